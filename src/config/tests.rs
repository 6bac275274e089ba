//! The precedence of settings, and the values resolution refuses.

use super::*;

fn resolve(env: &[(&str, &str)], deployment: &str, steps: Option<&str>) -> DeployConfig {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join(".deployment"), deployment).unwrap();
    if let Some(steps) = steps {
        std::fs::create_dir_all(repo.path().join("deploy")).unwrap();
        std::fs::write(repo.path().join("deploy/steps.json"), steps).unwrap();
    }
    let args = Flags {
        source: Some(repo.path().to_path_buf()),
        ..Flags::default()
    };
    let config =
        DeployConfig::resolve(&args, KuduEnv::from_pairs(env.iter().copied()), repo.path())
            .unwrap();
    // The config keeps paths, not the folder: leak it for the test's duration.
    std::mem::forget(repo);
    config
}

#[test]
fn dependency_groups_come_from_an_app_setting_or_steps_json() {
    let steps = r#"{"steps": [{"step": "detect-runtime"}, {"step": "validate-env"},
        {"step": "pip-install", "groups": ["dev", "web"]}]}"#;
    let c = resolve(&[], "", Some(steps));
    assert_eq!(c.dependency_groups.value, ["dev", "web"]);
    assert_eq!(
        c.dependency_groups.origin.to_string(),
        "deploy/steps.json (step pip-install)"
    );
    let c = resolve(
        &[("APPSETTING_KUDUHOOK_DEPENDENCY_GROUPS", "docs, test")],
        "",
        Some(steps),
    );
    assert_eq!(c.dependency_groups.value, ["docs", "test"]);
}

#[test]
fn app_settings_beat_deployment_keys_which_beat_steps_json() {
    let steps = r#"{"steps": [{"step": "sync"}, {"step": "detect-runtime"},
        {"step": "validate-env", "env_name": "fromsteps"},
        {"step": "pip-install", "requirements": "req/steps.txt"}]}"#;
    let deployment = "[config]\nKUDUHOOK_ENV_NAME = fromfile\n";

    let c = resolve(&[], deployment, Some(steps));
    assert_eq!(c.env_name.value, "fromfile");
    assert_eq!(
        c.env_name.origin.to_string(),
        ".deployment line 2 (KUDUHOOK_ENV_NAME)"
    );
    assert_eq!(c.requirements.value, "req/steps.txt");
    assert_eq!(
        c.requirements.origin.to_string(),
        "deploy/steps.json (step pip-install)"
    );

    let c = resolve(
        &[("APPSETTING_KUDUHOOK_ENV_NAME", "portal")],
        deployment,
        Some(steps),
    );
    assert_eq!(c.env_name.value, "portal");
    assert_eq!(
        c.env_name.origin.to_string(),
        "app setting KUDUHOOK_ENV_NAME"
    );

    let c = resolve(&[], "", None);
    assert_eq!(c.env_name.value, "env");
    assert_eq!(c.requirements.value, "requirements.txt");
    assert_eq!(c.env_name.origin, Origin::Default);
}

#[test]
fn kudu_exported_deployment_keys_are_named_as_such() {
    let c = resolve(
        &[("PYTHON_VERSION", "3.12")],
        "[config]\nPYTHON_VERSION = 3.12\n",
        None,
    );
    assert_eq!(
        c.python_version.unwrap().origin.to_string(),
        ".deployment line 2 (PYTHON_VERSION)"
    );
}

#[test]
fn force_rebuild_values() {
    assert_eq!(ForceRebuild::parse("TRUE"), ForceRebuild::Always);
    assert_eq!(ForceRebuild::parse(" on "), ForceRebuild::Always);
    assert_eq!(ForceRebuild::parse(""), ForceRebuild::Off);
    assert_eq!(ForceRebuild::parse("off"), ForceRebuild::Off);
    assert_eq!(
        ForceRebuild::parse("2026-11-23"),
        ForceRebuild::Token("2026-11-23".into())
    );
    let c = resolve(&[("KUDUHOOK_FORCE_ENV_REBUILD", "yes")], "", None);
    assert_eq!(c.force_rebuild.value, ForceRebuild::Always);
}

#[test]
fn by_hand_defaults_follow_deploy_cmd_layout() {
    let c = resolve(&[], "", None);
    let parent = c.source.value.parent().unwrap();
    assert_eq!(c.target.value, parent.join("artifacts/wwwroot"));
    assert_eq!(c.next_manifest.value, parent.join("artifacts/manifest"));
    assert_eq!(c.previous_manifest.value, c.next_manifest.value);
    assert_eq!(c.sync.ignore.shown(), DEFAULT_SYNC_IGNORE.map(String::from));
}

#[test]
fn unsafe_paths_are_refused() {
    let repo = tempfile::tempdir().unwrap();
    let args = Flags {
        source: Some(repo.path().to_path_buf()),
        ..Flags::default()
    };
    for (name, value) in [
        ("KUDUHOOK_ENV_NAME", "../outside"),
        ("KUDUHOOK_ENV_NAME", "a/b"),
        ("CUSTOM_REQUIREMENTSTXT_PATH", "/etc/passwd"),
        ("CUSTOM_REQUIREMENTSTXT_PATH", "../other/requirements.txt"),
    ] {
        let env = KuduEnv::from_pairs([(name, value)]);
        let err = DeployConfig::resolve(&args, env, repo.path()).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref(),
                Some(SettingsError::BadPathSetting { .. })
            ),
            "{name}={value}: {err}"
        );
    }
}
