//! What a new env holds of its own before any requirement: pip (and setuptools before Python
//! 3.12), as `python -m venv` gives them, without venv's cost. venv runs ensurepip, which
//! installs pip from a bundled wheel by running pip itself: seconds. The base interpreter
//! already holds the same distributions, installed the same way: copying the files their
//! RECORDs list and writing venv's three `pip` scripts takes a fraction of that.
//!
//! Where the base interpreter does not hold them (Debian's python3 without python3-pip), the
//! env gets them from ensurepip as venv would.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::PackageName;

use crate::ground::error::DeployError;
use crate::python::PythonVersion;
use crate::python::closure;
use crate::settings::Platform;

/// The distributions a fresh env made by `python -m venv` holds for `version`.
pub fn venv_seeds(version: &PythonVersion) -> &'static [&'static str] {
    if (version.major, version.minor) < (3, 12) {
        &["pip", "setuptools"]
    } else {
        &["pip"]
    }
}

/// What seeding copied: each distribution's name and version, and the files.
pub struct Seeded {
    pub seeds: Vec<(String, String)>,
    pub files: usize,
}

/// Copies pip (and setuptools where venv would add it) from the base interpreter at
/// `interpreter` into the env at `env_dir` (made `--without-pip`), with venv's `pip`, `pip3`
/// and `pipX.Y` scripts. `Ok(None)` when the base does not hold them all; nothing is copied
/// then.
pub fn from_base(
    interpreter: &Path,
    version: &PythonVersion,
    env_dir: &Path,
) -> Result<Option<Seeded>, DeployError> {
    let Some(prefix) = base_prefix(interpreter) else {
        return Ok(None);
    };
    let (major, minor) = (version.major, version.minor);
    let base_site = prefix.join(format!("lib/python{major}.{minor}/site-packages"));
    let Ok(dists) = closure::installed(&prefix, Platform::Linux) else {
        return Ok(None);
    };
    let mut wanted = Vec::new();
    for name in venv_seeds(version) {
        let name = PackageName::from_str(name).expect("a valid name");
        match dists.iter().find(|d| d.name == name) {
            Some(dist) => wanted.push(dist),
            None => return Ok(None),
        }
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for dist in &wanted {
        let Ok(listed) = dist.files(&prefix) else {
            return Ok(None);
        };
        // Scripts outside site-packages name the base's python: the env's own are written below.
        files.extend(
            listed
                .into_iter()
                .filter_map(|f| f.strip_prefix(&base_site).ok().map(Path::to_path_buf)),
        );
    }
    let env_site = env_dir.join(format!("lib/python{major}.{minor}/site-packages"));
    {
        use rayon::prelude::*;
        files.par_iter().try_for_each(|relative| {
            let to = env_site.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DeployError::io("create", parent, e))?;
            }
            match crate::ground::paths::copy_file_keeping_mtime(&base_site.join(relative), &to) {
                Ok(_) => Ok(()),
                // A RECORD may list bytecode that was never written.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(DeployError::io("copy pip into the env", &to, e)),
            }
        })?;
    }
    write_pip_scripts(env_dir, major, minor)?;
    Ok(Some(Seeded {
        seeds: wanted
            .iter()
            .map(|d| (d.name.to_string(), d.version.clone()))
            .collect(),
        files: files.len(),
    }))
}

/// The installation prefix of `interpreter` (`/opt/python/3.11.7` for its `bin/python3.11`).
fn base_prefix(interpreter: &Path) -> Option<PathBuf> {
    let real = interpreter.canonicalize().ok()?;
    let prefix = real.parent()?.parent()?.to_path_buf();
    prefix.join("lib").is_dir().then_some(prefix)
}

/// venv's `pip`, `pip3` and `pipX.Y` console scripts, naming the env's own python.
fn write_pip_scripts(env_dir: &Path, major: u32, minor: u32) -> Result<(), DeployError> {
    let bin = env_dir.join("bin");
    let text = format!(
        "#!{}/bin/python{major}.{minor}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n\
         from pip._internal.cli.main import main\nif __name__ == '__main__':\n    \
         sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    \
         sys.exit(main())\n",
        env_dir.display()
    );
    for name in [
        "pip".to_string(),
        format!("pip{major}"),
        format!("pip{major}.{minor}"),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, &text).map_err(|e| DeployError::io("write", &path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| DeployError::io("make executable", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_adds_setuptools_before_python_3_12_only() {
        let v = |s| PythonVersion::parse(s).unwrap();
        assert_eq!(venv_seeds(&v("3.11.7")), ["pip", "setuptools"]);
        assert_eq!(venv_seeds(&v("3.12.1")), ["pip"]);
        assert_eq!(venv_seeds(&v("3.13.0")), ["pip"]);
    }
}
