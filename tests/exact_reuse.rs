//! Exact envs at the speed of reuse: a changed requirement builds the new env from a copy of
//! the live one, installs into it and removes what the requirements no longer need. The proof
//! is differential: over random sequences of requirement edits, the reused env must equal an
//! env built from scratch for the same requirements (distributions and versions, console
//! scripts and what they run, importable modules, which package a shared module comes from).
//! New envs get pip from the base interpreter's own installation, not from venv's ensurepip:
//! they hold what a plain `python -m venv` env holds. Real venvs, real pip, wheels built in the
//! test, no network.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Site, build_wheel_with, python, shared_wheels};

/// What a test can see of an env, from its own interpreter.
const SNAPSHOT: &str = r#"
import importlib.metadata as md, json, os, pkgutil, subprocess, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
bindir = os.path.dirname(sys.executable)
scripts = sorted(os.listdir(bindir))
ran = {}
for script in scripts:
    if script.startswith("tool"):
        ran[script] = subprocess.run([os.path.join(bindir, script)], capture_output=True, text=True).stdout.strip()
try:
    import shared
    shared = shared.ORIGIN
except ImportError as error:
    shared = "ImportError"
print(json.dumps({
    "dists": sorted("%s==%s" % (d.metadata["Name"].lower(), d.version) for d in md.distributions(path=[site])),
    "modules": sorted(m.name for m in pkgutil.iter_modules([site])),
    "scripts": scripts,
    "scripts_run": ran,
    "shared": shared,
}, indent=1))
"#;

fn snapshot(env: &Path) -> String {
    let out = Command::new(env.join("bin/python"))
        .args(["-c", SNAPSHOT])
        .current_dir(env.parent().unwrap())
        .output()
        .expect("run the env's python");
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many of the env's compiled modules no longer match their source's time (Python would
/// compile them again on import).
fn stale_bytecode(env: &Path) -> String {
    const CHECK: &str = r#"
import glob, importlib.util, os, struct, sysconfig
site = sysconfig.get_paths()["purelib"]
stale = 0
for source in glob.glob(site + "/**/*.py", recursive=True):
    compiled = importlib.util.cache_from_source(source)
    if os.path.exists(compiled):
        with open(compiled, "rb") as f:
            recorded = struct.unpack("<I", f.read(16)[8:12])[0]
        stale += recorded != int(os.stat(source).st_mtime) & 0xFFFFFFFF
print(f"{stale} stale")
"#;
    let out = Command::new(env.join("bin/python"))
        .args(["-c", CHECK])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The packages the random requirements choose from: versions to bump and downgrade, a
/// dependency with a minimum, extras, a marker-gated dependency that never applies here, a
/// parent whose child is orphaned when it goes, two packages that ship the same module, and
/// console scripts.
fn universe(wheels: &Path) {
    for args in [
        &["alpha", "1.0"][..],
        &["alpha", "2.0", "--requires", "beta>=1"],
        &["beta", "1.0"],
        &["beta", "2.0"],
        &[
            "gamma",
            "1.0",
            "--extra",
            "fast",
            "--requires",
            "delta; extra == 'fast'",
            "--requires",
            "epsilon; python_version < '3'",
        ],
        &["delta", "1.0"],
        &["epsilon", "1.0"],
        &["parent", "1.0", "--requires", "child"],
        &["child", "1.0"],
        &["oldshared", "1.0", "--module", "shared"],
        &["newshared", "1.0", "--module", "shared"],
        &["tool", "1.0", "toolcmd"],
        &["tool", "2.0", "toolcmd", "toolcmd2"],
    ] {
        build_wheel_with(wheels, args);
    }
}

/// Each line of the requirements is one of these choices ("" leaves it out).
const CHOICES: [&[&str]; 6] = [
    &["", "alpha==1.0", "alpha==2.0"],
    &["", "beta==1.0", "beta"],
    &["", "gamma", "gamma[fast]"],
    &["", "parent"],
    &["", "oldshared", "newshared"],
    &["", "tool==1.0", "tool==2.0"],
];

/// A small deterministic generator (xorshift), seeded per run and printed on failure.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn app(site: &Site, requirements: &str) {
    site.write("requirements.txt", requirements);
    site.write("app.py", "def app():\n    return 'ok'\n");
    site.write("runtime.txt", "python-3.11\n");
}

#[test]
fn a_reused_env_equals_a_fresh_one_over_random_requirement_edits() {
    let seed = std::env::var("KUDUHOOK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut random = Random(seed);
    let site = Site::empty();
    universe(&site.wheels_dir_of_its_own());
    let mut previous = String::from("(first deployment)");
    let mut reused = 0;
    for step in 0..8 {
        let lines: Vec<&str> = CHOICES
            .iter()
            .map(|choices| choices[random.below(choices.len())])
            .filter(|line| !line.is_empty())
            .collect();
        let requirements = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let context = format!(
            "seed {seed} (KUDUHOOK_TEST_SEED={seed} replays it), step {step}: {previous:?} -> {requirements:?}"
        );
        app(&site, &requirements);
        let run = site.deploy(&[]);
        assert_eq!(run.code, 0, "{context}\n{}", run.log);
        if step > 0 && requirements != previous {
            assert!(
                run.log.contains("Reused "),
                "{context}: the live env was not reused\n{}",
                run.log
            );
            assert!(
                !run.log.contains("cannot be proven exact"),
                "{context}\n{}",
                run.log
            );
            reused += 1;
        }
        // The same requirements, deployed to a new site: an env built from scratch.
        let fresh = Site::empty();
        std::fs::create_dir_all(fresh.wheels_dir_of_its_own()).unwrap();
        for wheel in std::fs::read_dir(site.wheels_dir_of_its_own())
            .unwrap()
            .flatten()
        {
            std::fs::copy(
                wheel.path(),
                fresh.wheels_dir_of_its_own().join(wheel.file_name()),
            )
            .unwrap();
        }
        app(&fresh, &requirements);
        let built = fresh.deploy(&[]);
        assert_eq!(built.code, 0, "{context}\n{}", built.log);
        assert_eq!(
            snapshot(&site.env_dir()),
            snapshot(&fresh.env_dir()),
            "{context}: the reused env differs from a fresh one\n{}",
            run.log
        );
        previous = requirements;
    }
    assert!(reused > 0, "seed {seed}: no step changed the requirements");
}

#[test]
fn a_package_replaced_by_another_shipping_the_same_module_keeps_the_module() {
    let site = Site::empty();
    universe(&site.wheels_dir_of_its_own());
    app(&site, "oldshared\ntool==1.0\n");
    site.deploy(&[]).assert_ok();
    app(&site, "newshared\ntool==2.0\n");
    let run = site.deploy(&[]);
    run.assert_ok()
        .assert_contains("Reused 2 packages from the live env; added newshared 1.0; changed tool 1.0 -> 2.0; removed oldshared 1.0");
    let seen = snapshot(&site.env_dir());
    assert!(seen.contains("\"shared\": \"newshared\""), "{seen}");
    assert!(
        seen.contains("\"toolcmd2\": \"hello from tool 2.0\""),
        "the new console script runs from the new env: {seen}"
    );
    assert_eq!(site.leftovers(), Vec::<String>::new());
    // The copy kept its files' times: the bytecode of what was reused is still valid, so the
    // site's first imports read it rather than compile again.
    assert_eq!(stale_bytecode(&site.env_dir()), "0 stale");
    // `kuduhook status` says what reuse bought too.
    let status = Command::new(support::kuduhook())
        .args(["status", "--target"])
        .arg(&site.target)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("Reused 2 packages from the live env; added newshared 1.0"),
        "{status}"
    );
}

#[test]
fn an_env_holding_a_legacy_install_is_rebuilt_not_reused_and_the_log_says_why() {
    let site = Site::empty();
    universe(&site.wheels_dir_of_its_own());
    app(&site, "alpha==1.0\n");
    site.deploy(&[]).assert_ok();
    let legacy = site
        .env_dir()
        .join("lib/python3.11/site-packages/legacy-1.0.egg-info");
    std::fs::create_dir_all(&legacy).unwrap();
    app(&site, "alpha==2.0\n");
    let run = site.deploy(&[]);
    run.assert_ok()
        .assert_contains("the live env cannot be reused: legacy-1.0.egg-info")
        .assert_contains("installed the legacy way")
        .assert_lacks("Reused ");
    assert!(
        !site
            .env_dir()
            .join("lib/python3.11/site-packages/legacy-1.0.egg-info")
            .exists(),
        "a fresh env"
    );
    assert_eq!(site.imported_version("alpha").as_deref(), Some("2.0"));
}

/// `pip freeze --all` of an env without the app's own package, and its bin folder without the
/// app's console script.
fn seeds_and_scripts(env: &Path) -> (String, Vec<String>) {
    let freeze = Command::new(env.join("bin/pip"))
        .args(["freeze", "--all", "--disable-pip-version-check"])
        .output()
        .expect("run the env's pip");
    assert!(
        freeze.status.success(),
        "{}",
        String::from_utf8_lossy(&freeze.stderr)
    );
    let freeze = String::from_utf8_lossy(&freeze.stdout)
        .lines()
        .filter(|l| !l.starts_with("kudupkg"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut scripts: Vec<String> = std::fs::read_dir(env.join("bin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "kudupkg-hello")
        .collect();
    scripts.sort();
    (freeze, scripts)
}

#[test]
fn a_new_env_gets_from_the_base_interpreter_what_venv_would_give_it() {
    for minor in ["3.11", "3.12"] {
        let site = Site::app(minor);
        site.deploy(&[])
            .assert_ok()
            .assert_contains("copied from the base interpreter's own")
            .assert_lacks("ensurepip, as venv does");
        let plain = tempfile::tempdir().unwrap();
        let made = Command::new(python(minor))
            .args(["-m", "venv"])
            .arg(plain.path().join("env"))
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(
            seeds_and_scripts(&site.env_dir()),
            seeds_and_scripts(&plain.path().join("env")),
            "Python {minor}: the same distributions and scripts as python -m venv gives"
        );
        // What pip installed was compiled to bytecode (by compileall, after the install).
        let compiled = Command::new(site.env_python())
            .args([
                "-B",
                "-c",
                "import importlib.util, os, kudupkg; \
                 print(os.path.exists(importlib.util.cache_from_source(kudupkg.__file__)))",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&compiled.stdout).trim(), "True");
        assert_eq!(stale_bytecode(&site.env_dir()), "0 stale");
        // Its pip works for the user's own steps, from the site's path.
        let pip = Command::new(site.env_dir().join(format!("bin/pip{minor}")))
            .args(["install", "-q", "--no-index", "--find-links"])
            .arg(shared_wheels())
            .arg("kudupkg==2.0")
            .status()
            .unwrap();
        assert!(pip.success());
        assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    }
}

#[test]
fn a_base_interpreter_without_pip_of_its_own_gets_it_from_ensurepip() {
    // Debian's python3 keeps pip in dist-packages (python3-pip), not in its own site-packages.
    let debian = "/usr/bin/python3.11";
    let site = Site::app("3.11");
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_PYTHON", debian)])
        .assert_ok()
        .assert_contains(
            "No pip and setuptools in the base interpreter's own site-packages to copy: \
             installing pip with ensurepip, as venv does",
        );
    let pip = Command::new(site.env_dir().join("bin/pip"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(pip.status.success());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn reuse_honours_constraints_wheel_paths_and_direct_references() {
    let site = Site::empty();
    let wheels = site.wheels_dir_of_its_own();
    universe(&wheels);
    // A wheel committed in the repository, named by path; another named by a file URL.
    std::fs::create_dir_all(site.repo.join("vendor")).unwrap();
    std::fs::copy(
        wheels.join("alpha-2.0-py3-none-any.whl"),
        site.repo.join("vendor/alpha-2.0-py3-none-any.whl"),
    )
    .unwrap();
    let tool = format!(
        "tool @ file://{}",
        wheels.join("tool-2.0-py3-none-any.whl").display()
    );
    site.write("constraints.txt", "beta==1.0\n");
    app(
        &site,
        &format!("-c constraints.txt\n./vendor/alpha-2.0-py3-none-any.whl\nbeta\n{tool}\n"),
    );
    site.deploy(&[]).assert_ok();
    // The URL requirement goes; the constraint still holds beta at 1.0 (beta 2.0 is there).
    app(
        &site,
        "-c constraints.txt\n./vendor/alpha-2.0-py3-none-any.whl\nbeta\n",
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("from the live env; removed tool 2.0 (")
        .assert_lacks("cannot be proven exact");
    let fresh = Site::empty();
    universe(&fresh.wheels_dir_of_its_own());
    std::fs::create_dir_all(fresh.repo.join("vendor")).unwrap();
    std::fs::copy(
        site.repo.join("vendor/alpha-2.0-py3-none-any.whl"),
        fresh.repo.join("vendor/alpha-2.0-py3-none-any.whl"),
    )
    .unwrap();
    fresh.write("constraints.txt", "beta==1.0\n");
    app(
        &fresh,
        "-c constraints.txt\n./vendor/alpha-2.0-py3-none-any.whl\nbeta\n",
    );
    fresh.deploy(&[]).assert_ok();
    assert_eq!(snapshot(&site.env_dir()), snapshot(&fresh.env_dir()));
    assert!(snapshot(&site.env_dir()).contains("\"beta==1.0\""));
}
