//! Settings (SPEC §2 "Settings"): write-only secrets, validation that stores nothing on a
//! bad value, the community id recorded by VK, and settings fixed by the platform.

mod common;

use common::*;
use vk_core::dialog::{Delivery, DialogStatus};
use vk_core::ids::EmployeeId;
use vk_core::intake::CallbackReply;
use vk_core::settings::{DEFAULT_API_VERSION, DEFAULT_GROUP_NAME, SettingsUpdate};
use vk_core::{Error, ErrorKind};

#[test]
fn fresh_settings_have_defaults_and_nothing_secret() {
    let bench = Bench::empty();
    let settings = bench.core().settings().expect("settings");
    assert_eq!(settings.access_token, None);
    assert_eq!(settings.secret, None);
    assert_eq!(settings.confirmation, None);
    assert_eq!(settings.group_name, DEFAULT_GROUP_NAME);
    assert_eq!(settings.api_version, DEFAULT_API_VERSION);
    assert_eq!(settings.api_version, "5.199");
    assert!(settings.employees.is_empty());
    assert_eq!(settings.group_id, None);
}

#[test]
fn secrets_are_masked_on_every_read() {
    let bench = Bench::connected();

    let read = bench.core().settings();
    let shown = format!("{read:?}");

    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    let read = read.expect("settings");
    assert_eq!(read.access_token.as_deref(), Some("vk1.a.****Ab3x"));
    assert_eq!(read.secret.as_deref(), Some("****"));
    assert_eq!(read.confirmation.as_deref(), Some(CONFIRMATION));
    assert_eq!(read.group_name, GROUP_NAME);
    assert_eq!(read.group_id, Some(GROUP_ID));
}

#[test]
fn writing_settings_answers_with_masked_secrets_too() {
    let bench = Bench::empty();
    let written = bench.core().put_settings(SettingsUpdate {
        access_token: Some(TOKEN.into()),
        secret: Some(SECRET.into()),
        ..SettingsUpdate::default()
    });
    let shown = format!("{written:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn secrets_never_appear_in_refusals() {
    let bench = Bench::connected();
    let refusals = [
        bench.deliver(&Event::message_new(PERSON, 1, "x").with_secret(Some("nope"))),
        bench.deliver(&Event::confirmation().with_secret(Some("nope"))),
    ];
    for refusal in refusals {
        let error = refusal.expect_err("refused");
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(TOKEN), "{text}");
        }
    }
}

#[test]
fn fields_left_out_of_an_update_are_kept() {
    let bench = Bench::connected();
    let employee = bench.hire();

    bench
        .core()
        .put_settings(SettingsUpdate {
            group_name: Some("Renamed".into()),
            ..SettingsUpdate::default()
        })
        .expect("renamed");

    let settings = bench.core().settings().expect("settings");
    assert_eq!(settings.group_name, "Renamed");
    assert_eq!(settings.access_token.as_deref(), Some("vk1.a.****Ab3x"));
    assert_eq!(settings.secret.as_deref(), Some("****"));
    assert_eq!(settings.confirmation.as_deref(), Some(CONFIRMATION));
    assert_eq!(settings.employees, [employee]);
    assert_eq!(settings.group_id, Some(GROUP_ID));
}

#[test]
fn an_empty_secret_removes_it_and_events_need_none_any_more() {
    let bench = Bench::connected();
    bench
        .core()
        .put_settings(SettingsUpdate {
            secret: Some(String::new()),
            ..SettingsUpdate::default()
        })
        .expect("cleared");
    assert_eq!(bench.core().settings().expect("settings").secret, None);
    assert_eq!(
        bench.deliver(&Event::message_new(PERSON, 1, "hi").with_secret(None)),
        Ok(CallbackReply::Ok)
    );
}

#[test]
fn invalid_values_are_refused_storing_nothing() {
    let bench = Bench::connected();
    let before = bench.snapshot();
    let bad = [
        (
            "api_version",
            SettingsUpdate {
                api_version: Some("latest".into()),
                ..SettingsUpdate::default()
            },
        ),
        (
            "api_version",
            SettingsUpdate {
                api_version: Some("5".into()),
                ..SettingsUpdate::default()
            },
        ),
        (
            "secret",
            SettingsUpdate {
                secret: Some("x".repeat(51)),
                ..SettingsUpdate::default()
            },
        ),
        (
            "secret",
            SettingsUpdate {
                secret: Some("has spaces".into()),
                ..SettingsUpdate::default()
            },
        ),
        (
            "access_token",
            SettingsUpdate {
                access_token: Some("t".repeat(513)),
                ..SettingsUpdate::default()
            },
        ),
        (
            "confirmation",
            SettingsUpdate {
                confirmation: Some("two words".into()),
                ..SettingsUpdate::default()
            },
        ),
        (
            "group_name",
            SettingsUpdate {
                group_name: Some("   ".into()),
                ..SettingsUpdate::default()
            },
        ),
        (
            "group_name",
            SettingsUpdate {
                group_name: Some("n".repeat(201)),
                ..SettingsUpdate::default()
            },
        ),
        // A valid field next to an invalid one is not stored either.
        (
            "api_version",
            SettingsUpdate {
                group_name: Some("Valid name".into()),
                employees: Some(vec![EmployeeId::new()]),
                api_version: Some("v5.199".into()),
                ..SettingsUpdate::default()
            },
        ),
    ];

    for (field, update) in bad {
        let error = bench
            .core()
            .put_settings(update)
            .expect_err("an invalid value is refused");
        assert!(
            matches!(&error, Error::InvalidField { field: f, .. } if *f == field),
            "{field}: {error}"
        );
        assert_eq!(error.kind(), vk_core::ErrorKind::BadInput);
    }
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn employee_list_is_stored_without_duplicates() {
    let bench = Bench::empty();
    let (a, b) = (EmployeeId::new(), EmployeeId::new());
    let view = bench
        .core()
        .put_settings(SettingsUpdate {
            employees: Some(vec![a, b, a, b, a]),
            ..SettingsUpdate::default()
        })
        .expect("stored");
    assert_eq!(view.employees, [a, b]);
}

#[test]
fn group_id_is_read_only_until_the_admin_resets_it() {
    let bench = Bench::connected();
    // No update field can touch it; a confirmation of another community is refused.
    bench
        .core()
        .put_settings(SettingsUpdate {
            group_name: Some("Other".into()),
            ..SettingsUpdate::default()
        })
        .expect("stored");
    assert_eq!(
        bench.core().settings().expect("settings").group_id,
        Some(GROUP_ID)
    );
    assert_eq!(
        bench.deliver(&Event::confirmation().for_group(42)),
        Err(Error::ForeignGroup)
    );

    let view = bench.core().reset_group_id().expect("reset");
    assert_eq!(view.group_id, None);
    // Until VK confirms again, events are refused.
    assert_eq!(
        bench.deliver(&Event::message_new(PERSON, 1, "hi")),
        Err(Error::GroupNotConfirmed)
    );
}

// ---- settings fixed by the platform ------------------------------------------------------

const PLATFORM_TOKEN: &str = "vk1.a.PLATFORM-fixed-token-value-Zz9q";
const PLATFORM_SECRET: &str = "platform-secret-123";

fn platform() -> SettingsUpdate {
    SettingsUpdate {
        access_token: Some(PLATFORM_TOKEN.into()),
        secret: Some(PLATFORM_SECRET.into()),
        ..SettingsUpdate::default()
    }
}

#[test]
fn platform_settings_override_stored_ones_on_read_and_stay_masked() {
    let bench = Bench::connected();
    let fixed = platform();
    let core = bench.core().with_platform_settings(&fixed);

    let read = core.settings();
    let shown = format!("{read:?}");

    assert!(!shown.contains(PLATFORM_TOKEN), "{shown}");
    assert!(!shown.contains(PLATFORM_SECRET), "{shown}");
    let read = read.expect("settings");
    assert_eq!(read.access_token.as_deref(), Some("vk1.a.****Zz9q"));
    // Unfixed fields come from storage.
    assert_eq!(read.group_name, GROUP_NAME);
    assert_eq!(read.confirmation.as_deref(), Some(CONFIRMATION));
}

#[test]
fn platform_secret_is_the_one_callbacks_must_carry() {
    let bench = Bench::connected();
    let fixed = platform();
    let core = bench.core().with_platform_settings(&fixed);
    let before = bench.snapshot();

    let stored_secret = Event::message_new(PERSON, 1, "hi");
    assert_eq!(
        core.handle_callback(&stored_secret.body()),
        Err(Error::WrongSecret)
    );
    assert_eq!(bench.snapshot(), before);

    let platform_secret = Event::message_new(PERSON, 1, "hi").with_secret(Some(PLATFORM_SECRET));
    assert_eq!(
        core.handle_callback(&platform_secret.body()),
        Ok(CallbackReply::Ok)
    );
}

#[test]
fn platform_access_token_is_the_one_sent_to_vk() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let fixed = platform();
    let core = bench.core().with_platform_settings(&fixed);

    core.handle_callback(
        &Event::message_new(PERSON, 1, "hi")
            .with_secret(Some(PLATFORM_SECRET))
            .body(),
    )
    .expect("accepted");
    let dialog = bench.dialog_of(PERSON).expect("dialog");
    core.claim(operator, dialog.id).expect("claim");
    let sent = core.send(operator, dialog.id, "hello").expect("send");

    assert_eq!(sent.delivery, Some(Delivery::Sent));
    let calls = bench.vk.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.param("access_token") == PLATFORM_TOKEN)
    );
}

#[test]
fn platform_settings_are_never_written_to_storage() {
    let bench = Bench::configured();
    let fixed = platform();
    let core = bench.core().with_platform_settings(&fixed);

    core.put_settings(SettingsUpdate {
        group_name: Some("New name".into()),
        ..SettingsUpdate::default()
    })
    .expect("stored");
    core.handle_callback(
        &Event::confirmation()
            .with_secret(Some(PLATFORM_SECRET))
            .body(),
    )
    .expect("confirmed");

    for entry in bench.snapshot() {
        let text = String::from_utf8_lossy(&entry.value);
        assert!(!text.contains(PLATFORM_TOKEN), "{}: {text}", entry.key);
        assert!(!text.contains(PLATFORM_SECRET), "{}: {text}", entry.key);
    }
    // Without the platform, the stored values are still in force.
    let stored = bench.core().settings().expect("settings");
    assert_eq!(stored.access_token.as_deref(), Some("vk1.a.****Ab3x"));
    assert_eq!(stored.group_name, "New name");
}

#[test]
fn platform_employee_list_governs_commands_and_reads_alike() {
    let bench = Bench::connected();
    let stored_only = bench.hire();
    let fixed_operator = EmployeeId::new();
    let fixed = SettingsUpdate {
        employees: Some(vec![fixed_operator]),
        ..SettingsUpdate::default()
    };
    bench.accept(&Event::message_new(PERSON, 1, "hi"));
    let core = bench.core().with_platform_settings(&fixed);
    let dialog = bench.dialog_of(PERSON).expect("dialog");

    // The platform's employee may work and read…
    core.claim(fixed_operator, dialog.id).expect("claim");
    assert_eq!(
        core.dialog(fixed_operator, dialog.id).map(|d| d.id),
        Ok(dialog.id)
    );
    assert_eq!(
        core.dialogs(fixed_operator, DialogStatus::Open, None, 10)
            .map(|p| p.items.len()),
        Ok(1)
    );
    assert_eq!(
        core.messages(fixed_operator, dialog.id, None, 10)
            .map(|page| page.items.len()),
        Ok(1)
    );
    assert_eq!(
        core.history(fixed_operator, dialog.id, None, 10)
            .map(|(page, operators)| (page.items.len(), operators)),
        Ok((2, vec![fixed_operator])),
        "message-in and claimed"
    );
    assert_eq!(
        core.lead(fixed_operator, dialog.lead_id)
            .map(|(lead, _)| lead.id),
        Ok(dialog.lead_id)
    );
    // …and the one only stored is not listed while the platform fixes the list.
    let not_listed = Err(Error::EmployeeNotListed(stored_only.to_string()));
    assert_eq!(
        core.dialog(stored_only, dialog.id).map(|d| d.id),
        not_listed
    );
    assert_eq!(
        core.restore(stored_only, dialog.id).map(|d| d.id),
        not_listed
    );
}

#[test]
fn a_setting_the_platform_fixes_cannot_be_changed_and_the_rest_can() {
    let bench = Bench::connected();
    let fixed = platform();
    let core = bench.core().with_platform_settings(&fixed);
    let before = bench.snapshot();

    let refused = core
        .put_settings(SettingsUpdate {
            group_name: Some("Another name".into()),
            secret: Some("another-secret".into()),
            ..SettingsUpdate::default()
        })
        .expect_err("a fixed field is refused");
    assert_eq!(refused, Error::FixedByPlatform("secret"));
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert_eq!(bench.snapshot(), before, "nothing of the update is stored");

    let operator = EmployeeId::new();
    let view = core
        .put_settings(SettingsUpdate {
            group_name: Some("Another name".into()),
            employees: Some(vec![operator]),
            ..SettingsUpdate::default()
        })
        .expect("fields the platform leaves open change");
    assert_eq!(
        (view.group_name.as_str(), view.employees.as_slice()),
        ("Another name", &[operator][..])
    );
}
