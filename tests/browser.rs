//! The operator workspace in real headless Chromium (WORKSPACE.md § Proof), on both shells,
//! at desktop size and at 375×812: `tests/browser/story.mjs` drives the screens by their
//! Russian labels while this test runs the host and VK's stand-in. The admin connects the
//! community and adds two employees; a person writes (a VK callback); the dialog appears
//! without a reload; an employee claims, answers, invites the other, who writes and leaves;
//! history; lead, goods, conversion; the Communication block of each document opens the chat;
//! spam and restore; finish and restore from the lead; hostile text from VK shows as text and
//! runs nothing.
//!
//! Needs Node.js, Chromium (`apt-get install chromium`, at `/usr/bin/chromium` or `$CHROMIUM`)
//! and `npm ci` in `tests/browser`. Screenshots of every screen go to
//! `target/browser-screenshots/<shell>/` (or `$VK_BROWSER_SCREENSHOTS/<shell>/`).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use support::*;

on_both_shells!(the_story_at_desktop_size, the_story_on_a_phone);

fn the_story_at_desktop_size(shell: Shell) {
    story(shell, "1280x800");
}

fn the_story_on_a_phone(shell: Shell) {
    story(shell, "375x812");
}

/// One browser story at a time: each runs Chromium with three contexts and a host, and the
/// stories wait on the screen with deadlines a crowded machine would break.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn story(shell: Shell, viewport: &str) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: install it (`apt-get install -y chromium`) or set CHROMIUM"
    );
    assert!(
        Path::new(&format!(
            "{root}/tests/browser/node_modules/playwright-core"
        ))
        .exists(),
        "playwright-core is missing: run `npm ci` in tests/browser"
    );

    // A fresh host: the story connects the community itself, through the settings screen.
    let vk = VkStandIn::start();
    let (host, name, fixed, group_name) = match shell {
        Shell::Plugin => (Host::serve(&vk, &[]), "plugin", "", "Пекарня «Ромашка»"),
        // Spin variables fix the access key, the secret, the confirmation string and the name.
        Shell::Spin => (
            Host::serve_spin(&vk, &[]),
            "spin",
            "access_token,secret,confirmation,group_name",
            "Bakery",
        ),
    };
    let screenshots = std::env::var("VK_BROWSER_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{root}/target/browser-screenshots"));
    let output = Command::new("node")
        .arg(format!("{root}/tests/browser/story.mjs"))
        .current_dir(format!("{root}/tests/browser"))
        .env("BASE_URL", &host.base)
        .env("ADMIN_TOKEN", ADMIN)
        .env("VK_CALLBACK_URL", format!("{}{CALLBACK_PATH}", host.base))
        .env("VK_SECRET", SECRET)
        .env("VK_GROUP", GROUP.to_string())
        .env("VK_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("VK_CONFIRMATION", CONFIRMATION)
        .env("VK_FIXED", fixed)
        .env("VK_GROUP_NAME", group_name)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", format!("{screenshots}/{name}"))
        .env("VIEWPORT", viewport)
        .output()
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser story failed on {name} at {viewport}:\n{stderr}\n--- its steps:\n{stdout}\n--- the host's log:\n{}",
        host.logs()
    );
    // What the people of the story wrote reached VK, on behalf of the community.
    let delivered: Vec<String> = vk.delivered().into_iter().map(|(_, text)| text).collect();
    for text in [
        "Добрый день! Торт «Наполеон» на 12 человек — 1 850 ₽.",
        "Доставка по городу — 350 ₽, завтра с 10 до 14.",
    ] {
        assert!(
            delivered.iter().any(|d| d == text),
            "VK did not get {text:?}; it got {delivered:?}"
        );
    }
}
