//! A guest that traps, loops or hoards memory fails that request only; the host and the
//! next request are unaffected. Uses the test-only fault-injecting builds of both
//! components (`make faulty-plugin`).

mod support;

use serde_json::Value;
use support::*;

/// Sends each fault, then a real callback, and checks that only the fault failed.
fn each_fault_fails_only_its_request(world: &World) {
    for (fault, code) in [
        ("fault:trap", "plugin-fault"),
        ("fault:loop", "plugin-timeout"),
        ("fault:memory", "plugin-fault"),
    ] {
        let (status, body) =
            world
                .host
                .request("POST", CALLBACK_PATH, None, Some(fault.as_bytes().to_vec()));
        assert_eq!(status, 500, "{fault}: {body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["error"]["code"], code, "{fault}");
        let (status, body) =
            world
                .host
                .callback(&message_new(&format!("after-{fault}"), 5, 1, "still here"));
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "the request after {fault}"
        );
    }
    let dialog = world.dialog_of(5);
    assert_eq!(world.messages(0, dialog["id"].as_str().unwrap()).len(), 3);
}

#[test]
fn a_trap_a_endless_loop_and_a_memory_hog_each_fail_only_their_request() {
    let plugin = faulty_plugin_path();
    let world = World::with_flags(
        1,
        &[
            "--plugin",
            &plugin,
            "--call-timeout-ms",
            "1500",
            "--memory-mib",
            "32",
        ],
    );
    each_fault_fails_only_its_request(&world);
}

#[test]
fn the_spin_component_is_isolated_the_same_way() {
    // The real spin.toml, pointing at the faulty build.
    let dir = std::env::temp_dir().join(format!("vk-spin-faulty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let manifest = std::fs::read_to_string(format!("{}/spin.toml", root()))
        .expect("spin.toml")
        .replace(
            "target/wasm32-wasip2/release/vk_spin.wasm",
            &faulty_spin_path(),
        );
    assert!(
        manifest.contains(&faulty_spin_path()),
        "the source is replaced"
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).expect("a manifest");
    let path = path.to_str().expect("a UTF-8 path");
    let world = World::on_spin_with(1, &["--manifest", path, "--call-timeout-ms", "1500"]);
    each_fault_fails_only_its_request(&world);
    drop(world);
    std::fs::remove_dir_all(dir).ok();
}
