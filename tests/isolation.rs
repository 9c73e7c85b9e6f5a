//! A guest that traps, loops or hoards memory fails that request only; the host and the
//! next request are unaffected. Uses the test-only fault-injecting build of the plugin.

mod support;

use support::*;

fn faulty_world() -> World {
    let plugin = faulty_plugin_path();
    World::with_flags(
        1,
        &[
            "--plugin",
            &plugin,
            "--call-timeout-ms",
            "1500",
            "--memory-mib",
            "32",
        ],
    )
}

#[test]
fn a_trap_a_endless_loop_and_a_memory_hog_each_fail_only_their_request() {
    let world = faulty_world();
    let path = "/settings/integrations/vk-group/call-back";
    for (fault, code) in [
        ("fault:trap", "plugin-fault"),
        ("fault:loop", "plugin-timeout"),
        ("fault:memory", "plugin-fault"),
    ] {
        let (status, body) =
            world
                .host
                .request("POST", path, None, Some(fault.as_bytes().to_vec()));
        assert_eq!(status, 500, "{fault}: {body}");
        assert!(body.contains(code), "{fault}: {body}");
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
