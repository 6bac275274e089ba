//! Real wheels from the index, read as the installers read them. Wheels made in a test have
//! tidy METADATA; real ones do not: pandas' runs 1,573 lines, its `License:` field over 1,270
//! continuation lines (some of spaces alone) before its `Requires-Dist`. The corpus is
//! `tests/fixtures/corpus-requirements.txt`, downloaded once by `tests/setup.sh` (no network
//! here): one wheel or more from each build backend (meson-python, scikit-build-core,
//! hatchling, setuptools, flit, maturin, pdm-backend).
//!
//! Two proofs: every wheel's dependencies, markers and extras evaluated, are the ones
//! `importlib.metadata` (with `packaging`) reads for the same interpreter; and a pandas +
//! scikit-learn + Flask app's exact env keeps every dependency through a one-package bump and
//! drops only what a removed requirement alone needed, equal at each step to what pip resolves
//! for the same requirements.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use kuduhook::python::closure::{Dist, MARKER_ENVIRONMENT_SCRIPT, parse_marker_environment};
use kuduhook::python::metadata::Metadata;
use pep508_rs::{ExtraName, MarkerEnvironment};
use support::{Site, python};

/// The wheels `tests/setup.sh` downloaded.
fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wheels/corpus");
    assert!(
        dir.join("pandas-2.2.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
            .is_file(),
        "tests need the corpus of real wheels in {}: run bash tests/setup.sh",
        dir.display()
    );
    dir
}

fn wheels() -> Vec<PathBuf> {
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    wheels
}

/// What `importlib.metadata` reads of each wheel (given as arguments), its markers evaluated
/// by `packaging` (imported from the corpus' own wheel) for no extra and for each extra the
/// wheel provides: `{wheel file: {"name", "version", "requires", "by_extra": {extra: [dep]}}}`,
/// a dep written `name[extra,...]` with names normalized.
const IMPORTLIB_READS: &str = r#"
import glob, importlib.metadata as md, json, os, sys, zipfile
corpus = sys.argv[1]
sys.path.insert(0, glob.glob(os.path.join(corpus, "packaging-*.whl"))[0])
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
out = {}
for wheel in sorted(glob.glob(os.path.join(corpus, "*.whl"))):
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    dist = md.PathDistribution(zipfile.Path(archive, info.rsplit("/", 1)[0] + "/"))
    requires = [Requirement(r) for r in dist.requires or []]
    extras = sorted({canonicalize_name(e) for e in dist.metadata.get_all("Provides-Extra") or []})
    by_extra = {}
    for extra in [""] + extras:
        deps = set()
        for r in requires:
            if r.marker is None or r.marker.evaluate({"extra": extra}):
                extra_text = ",".join(sorted(canonicalize_name(e) for e in r.extras))
                deps.add(canonicalize_name(r.name) + ("[%s]" % extra_text if extra_text else ""))
        by_extra[extra] = sorted(deps)
    out[os.path.basename(wheel)] = {
        "name": canonicalize_name(dist.metadata["Name"]),
        "version": dist.version,
        "requires": len(requires),
        "by_extra": by_extra,
    }
print(json.dumps(out, indent=1, sort_keys=True))
"#;

fn importlib_reads(python: &Path) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-c", IMPORTLIB_READS])
        .arg(corpus())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "importlib.metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn marker_environment(python: &Path) -> MarkerEnvironment {
    let out = Command::new(python)
        .args(["-c", MARKER_ENVIRONMENT_SCRIPT])
        .output()
        .expect("run python");
    parse_marker_environment(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// The `.dist-info/<file>` member of a wheel: the dist-info folder's name, and the bytes.
fn dist_info_file(wheel: &Path, file: &str) -> (String, Vec<u8>) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap_or_default().to_string();
        let Some((folder, member)) = name.split_once('/') else {
            continue;
        };
        if folder.ends_with(".dist-info") && member == file {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return (folder.to_string(), bytes);
        }
    }
    panic!("{} has no .dist-info/{file}", wheel.display())
}

/// What kuduhook reads of each wheel, in [`IMPORTLIB_READS`]' shape.
fn kuduhook_reads(markers: &MarkerEnvironment) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for wheel in wheels() {
        let (dist_info, bytes) = dist_info_file(&wheel, "METADATA");
        let dist = Dist::from_metadata(&bytes, PathBuf::from(dist_info)).unwrap();
        let metadata = Metadata::parse_bytes(&bytes);
        let mut extras: Vec<ExtraName> = metadata
            .get_all("Provides-Extra")
            .map(|e| e.parse().unwrap())
            .collect();
        extras.sort();
        extras.dedup();
        let mut by_extra = serde_json::Map::new();
        let contexts = std::iter::once(None).chain(extras.iter().map(Some));
        for extra in contexts {
            let asked: Vec<ExtraName> = extra.into_iter().cloned().collect();
            let mut deps: Vec<String> = dist
                .dependencies(markers, &asked)
                .unwrap()
                .iter()
                .map(|r| {
                    let mut extras: Vec<String> = r.extras.iter().map(|e| e.to_string()).collect();
                    extras.sort();
                    match extras.is_empty() {
                        true => r.name.to_string(),
                        false => format!("{}[{}]", r.name, extras.join(",")),
                    }
                })
                .collect();
            deps.sort();
            deps.dedup();
            let key = extra.map(|e| e.to_string()).unwrap_or_default();
            by_extra.insert(key, deps.into());
        }
        out.insert(
            wheel.file_name().unwrap().to_string_lossy().into_owned(),
            serde_json::json!({
                "name": dist.name.to_string(),
                "version": dist.version,
                "requires": metadata.get_all("Requires-Dist").count(),
                "by_extra": by_extra,
            }),
        );
    }
    serde_json::Value::Object(out)
}

#[test]
fn every_real_wheels_dependencies_are_read_as_importlib_metadata_reads_them() {
    let python = python("3.11");
    let expected = importlib_reads(&python);
    let read = kuduhook_reads(&marker_environment(&python));
    let expected = expected.as_object().unwrap();
    assert!(
        expected.len() >= 40,
        "the corpus holds {} wheels",
        expected.len()
    );
    for (wheel, theirs) in expected {
        assert_eq!(
            &read[wheel], theirs,
            "{wheel}: kuduhook (left) and importlib.metadata (right) differ"
        );
    }
    // The corpus is what it says: pandas' dependencies are read past its License, and every
    // build backend is in it.
    assert_eq!(
        read["pandas-2.2.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]["by_extra"]
            [""],
        serde_json::json!(["numpy", "python-dateutil", "pytz", "tzdata"])
    );
    let generators: Vec<String> = wheels()
        .iter()
        .map(|wheel| {
            let (_, bytes) = dist_info_file(wheel, "WHEEL");
            Metadata::parse_bytes(&bytes)
                .get("Generator")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for backend in [
        "meson",
        "scikit-build-core",
        "hatchling",
        "setuptools",
        "flit",
        "maturin",
        "pdm-backend",
    ] {
        assert!(
            generators.iter().any(|g| g.starts_with(backend)),
            "no wheel in the corpus built by {backend}: {generators:?}"
        );
    }
}

/// The distributions installed in the deployed env, `name==version`, without the env's own
/// seeds (pip, setuptools), which no requirement asks for.
fn installed(site: &Site) -> Vec<String> {
    const LIST: &str = r#"
import importlib.metadata as md, json, sysconfig
site = sysconfig.get_paths()["purelib"]
names = sorted("%s==%s" % (d.metadata["Name"].lower().replace("_", "-"), d.version)
               for d in md.distributions(path=[site]))
print(json.dumps([n for n in names if n.split("==")[0] not in ("pip", "setuptools")]))
"#;
    let out = Command::new(site.env_python())
        .args(["-c", LIST])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What pip resolves for the site's requirements from the corpus, installing nothing: the
/// oracle an exact env must equal.
fn pip_resolves(site: &Site) -> Vec<String> {
    let out = Command::new(site.env_python())
        .args([
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
        ])
        .args(["--report", "-", "--no-index", "--find-links"])
        .arg(corpus())
        .arg("-r")
        .arg(site.repo.join("requirements.txt"))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip's dry run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = report["install"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let meta = &i["metadata"];
            let name = meta["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .replace('_', "-");
            format!("{name}=={}", meta["version"].as_str().unwrap())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_pandas_and_scikit_learn_apps_exact_env_keeps_every_dependency_through_changes() {
    let mut site = Site::empty();
    site.wheels = corpus();
    site.write(
        "app.py",
        "import flask, pandas, sklearn\n\napp = flask.Flask(__name__)\n\n\
         @app.route('/')\ndef index():\n    return f'pandas {pandas.__version__}'\n",
    );
    site.write("runtime.txt", "python-3.11\n");
    let requirements = |flask: &str, more: &str| {
        format!("flask=={flask}\npandas==2.2.3\n{more}gunicorn==23.0.0\n")
    };
    site.write(
        "requirements.txt",
        &requirements("3.1.2", "scikit-learn==1.5.2\n"),
    );
    site.deploy(&[]).assert_ok().assert_contains("start-check");
    let first = installed(&site);
    assert_eq!(
        first,
        pip_resolves(&site),
        "the first env is what pip resolves"
    );
    assert!(first.contains(&"pytz==2026.6".to_string()), "{first:?}");

    // A one-package bump: pandas' and scikit-learn's dependencies stay.
    site.write(
        "requirements.txt",
        &requirements("3.1.3", "scikit-learn==1.5.2\n"),
    );
    let bump = site.deploy(&[]);
    bump.assert_ok()
        .assert_contains("changed flask 3.1.2 -> 3.1.3")
        .assert_lacks("Removing what the requirements no longer need");
    let bumped = installed(&site);
    assert_eq!(bumped, pip_resolves(&site));
    assert_eq!(
        site.imported_version("pandas").as_deref(),
        Some("2.2.3"),
        "the deployed env imports pandas"
    );

    // scikit-learn dropped (and no longer imported): it goes with what it alone needed,
    // nothing pandas or Flask needs.
    site.write(
        "app.py",
        "import flask, pandas\n\napp = flask.Flask(__name__)\n",
    );
    site.write("requirements.txt", &requirements("3.1.3", ""));
    let drop = site.deploy(&[]);
    drop.assert_ok();
    let after = installed(&site);
    assert_eq!(
        after,
        pip_resolves(&site),
        "the env after the drop is what pip resolves"
    );
    let mut removed: Vec<String> = bumped
        .iter()
        .filter(|d| !after.contains(d))
        .map(|d| d.replace("==", " "))
        .collect();
    removed.sort();
    assert!(
        removed.contains(&"scikit-learn 1.5.2".to_string()),
        "{removed:?}"
    );
    let line = drop
        .log
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Removing what the requirements no longer need: ")
        })
        .expect("the log names what goes");
    let mut logged: Vec<String> = line.split(", ").map(str::to_string).collect();
    logged.sort();
    assert_eq!(logged, removed, "the log names exactly what was removed");
    assert_eq!(site.imported_version("pandas").as_deref(), Some("2.2.3"));
    assert_eq!(
        site.imported_version("sklearn"),
        None,
        "scikit-learn is gone"
    );
}
