//! VK callback intake (SPEC §2 "VK callback intake"): confirmation, the origin checks,
//! at-most-once processing, and what each event does to leads, dialogs and messages.

mod common;

use common::*;
use serde_json::json;
use vk_core::Error;
use vk_core::dialog::{Delivery, DialogStatus, Direction, EventKind};
use vk_core::intake::{CallbackReply, EVENT_RETENTION_DAYS};
use vk_core::lead::LeadStatus;
use vk_core::ports::{Change, Store, Write};
use vk_core::settings::SettingsUpdate;

// ---- confirmation ------------------------------------------------------------------------

#[test]
fn confirmation_answers_the_configured_string_and_records_the_group_id() {
    let bench = Bench::configured();
    assert_eq!(bench.core().settings().expect("settings").group_id, None);

    let reply = bench.deliver(&Event::confirmation());

    assert_eq!(
        reply,
        Ok(CallbackReply::Confirmation(CONFIRMATION.to_owned()))
    );
    assert_eq!(
        bench.core().settings().expect("settings").group_id,
        Some(GROUP_ID)
    );
}

#[test]
fn confirmation_without_a_secret_is_answered_only_while_no_secret_is_configured() {
    let bench = Bench::empty();
    bench.change_settings(SettingsUpdate {
        confirmation: Some(CONFIRMATION.to_owned()),
        ..SettingsUpdate::default()
    });
    let reply = bench.deliver(&Event::confirmation().with_secret(None));
    assert_eq!(
        reply,
        Ok(CallbackReply::Confirmation(CONFIRMATION.to_owned()))
    );

    // Once a secret is configured VK sends it with the confirmation too: one without it is
    // refused, and records nothing.
    let bench = Bench::configured();
    let before = bench.snapshot();
    let reply = bench.deliver(&Event::confirmation().with_secret(None));
    assert_eq!(reply, Err(Error::WrongSecret));
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn confirmation_with_a_wrong_secret_is_refused_and_records_nothing() {
    let bench = Bench::configured();
    let before = bench.snapshot();

    let reply = bench.deliver(&Event::confirmation().with_secret(Some("guessed-secret")));

    assert_eq!(reply, Err(Error::WrongSecret));
    assert_eq!(bench.snapshot(), before);
    assert_eq!(bench.core().settings().expect("settings").group_id, None);
}

#[test]
fn confirmation_without_a_configured_string_is_refused_and_records_nothing() {
    let bench = Bench::empty();
    let before = bench.snapshot();

    let reply = bench.deliver(&Event::confirmation().with_secret(None));

    assert_eq!(reply, Err(Error::ConfirmationNotSet));
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn confirmation_for_another_community_after_connecting_is_refused() {
    let bench = Bench::connected();
    let before = bench.snapshot();

    let reply = bench.deliver(&Event::confirmation().for_group(GROUP_ID + 1));

    assert_eq!(reply, Err(Error::ForeignGroup));
    assert_eq!(bench.snapshot(), before);
    assert_eq!(
        bench.core().settings().expect("settings").group_id,
        Some(GROUP_ID)
    );
}

#[test]
fn confirmation_after_a_group_id_reset_records_the_new_community() {
    let bench = Bench::connected();
    bench.core().reset_group_id().expect("reset");
    assert_eq!(bench.core().settings().expect("settings").group_id, None);

    let reply = bench.deliver(&Event::confirmation().for_group(GROUP_ID + 7));

    assert_eq!(
        reply,
        Ok(CallbackReply::Confirmation(CONFIRMATION.to_owned()))
    );
    assert_eq!(
        bench.core().settings().expect("settings").group_id,
        Some(GROUP_ID + 7)
    );
}

// ---- origin checks -----------------------------------------------------------------------

#[test]
fn events_before_confirmation_are_refused_with_nothing_stored() {
    let bench = Bench::configured();
    let before = bench.store.len();

    let reply = bench.deliver(&Event::message_new(PERSON, 1042, "hello"));

    assert_eq!(reply, Err(Error::GroupNotConfirmed));
    assert_eq!(bench.store.len(), before);
    assert!(bench.vk.calls().is_empty(), "VK must not be asked anything");
}

#[test]
fn event_with_a_wrong_secret_is_refused_with_nothing_stored() {
    let bench = Bench::connected();
    let before = bench.snapshot();
    let len = bench.store.len();

    let reply =
        bench.deliver(&Event::message_new(PERSON, 1042, "hello").with_secret(Some("wrong")));

    assert_eq!(reply, Err(Error::WrongSecret));
    assert_eq!(bench.store.len(), len);
    assert_eq!(bench.snapshot(), before);
    assert!(bench.vk.calls().is_empty());
}

#[test]
fn event_without_a_secret_is_refused_once_a_secret_is_configured() {
    let bench = Bench::connected();
    let before = bench.snapshot();

    let reply = bench.deliver(&Event::message_new(PERSON, 1042, "hello").with_secret(None));

    assert_eq!(reply, Err(Error::WrongSecret));
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn event_for_a_foreign_group_is_refused_with_nothing_stored() {
    let bench = Bench::connected();
    let before = bench.snapshot();
    let len = bench.store.len();

    let reply = bench.deliver(&Event::message_new(PERSON, 1042, "hello").for_group(GROUP_ID + 1));

    assert_eq!(reply, Err(Error::ForeignGroup));
    assert_eq!(bench.store.len(), len);
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn refused_deny_and_reply_events_change_nothing_either() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    let before = bench.snapshot();

    for (event, refusal) in [
        (
            Event::message_deny(PERSON).with_secret(Some("wrong")),
            Error::WrongSecret,
        ),
        (
            Event::message_reply(PERSON, 1043, 0, "admin text").for_group(1),
            Error::ForeignGroup,
        ),
        (
            Event::message_edit(PERSON, 1042, "edited", 1_767_262_000).with_secret(None),
            Error::WrongSecret,
        ),
    ] {
        assert_eq!(bench.deliver(&event), Err(refusal), "{}", event.kind);
    }

    assert_eq!(bench.snapshot(), before);
    assert_eq!(bench.messages(reader, dialog.id).len(), 1);
}

#[test]
fn malformed_bodies_are_refused_as_bad_input_with_nothing_stored() {
    let bench = Bench::connected();
    let before = bench.snapshot();
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"".to_vec(),
        br#"{"group_id": 218765432}"#.to_vec(),
        br#"{"type": "message_new"}"#.to_vec(),
        br#"{"type": "message_new", "group_id": "218765432"}"#.to_vec(),
        br#"{"type": "message_new", "group_id": 0}"#.to_vec(),
        br#"{"type": "message_new", "group_id": -218765432}"#.to_vec(),
        serde_json::to_vec(&json!({
            "type": "message_new", "group_id": GROUP_ID, "secret": SECRET,
            "event_id": "e1", "object": {"message": {"text": "no peer"}}
        }))
        .expect("json"),
        serde_json::to_vec(&json!({
            "type": "message_new", "group_id": GROUP_ID, "secret": SECRET,
            "event_id": "", "object": {"message": {"id": 1, "peer_id": 5, "from_id": 5}}
        }))
        .expect("json"),
    ];

    for body in bodies {
        let reply = bench.core().handle_callback(&body);
        let error = reply.expect_err("a malformed body is refused");
        assert_eq!(
            error.kind(),
            vk_core::ErrorKind::BadInput,
            "{error} for {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn unknown_event_types_are_acknowledged_and_ignored() {
    let bench = Bench::connected();
    let before = bench.snapshot();

    let typing = Event {
        kind: "message_typing_state".into(),
        group_id: GROUP_ID,
        event_id: Some(fresh_event_id()),
        secret: Some(SECRET.into()),
        object: json!({"state": "typing", "from_id": PERSON, "to_id": -GROUP_ID}),
    };

    assert_eq!(bench.deliver(&typing), Ok(CallbackReply::Ok));
    assert_eq!(bench.snapshot(), before);
}

// ---- at most once ------------------------------------------------------------------------

#[test]
fn same_event_id_delivered_five_times_stores_one_message() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let event = Event::message_new(PERSON, 1042, "hello");

    for _ in 0..5 {
        assert_eq!(bench.deliver(&event), Ok(CallbackReply::Ok));
    }

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(bench.messages(reader, dialog.id).len(), 1);
    assert_eq!(bench.count("lead/"), 1);
    assert_eq!(bench.count("dialog/"), 1);
    assert_eq!(
        bench.vk.calls_to("users.get").len(),
        1,
        "the name is asked once"
    );
}

#[test]
fn repeat_of_an_event_changes_nothing_at_all() {
    let bench = Bench::connected();
    let event = Event::message_new(PERSON, 1042, "hello");
    bench.accept(&event);
    let after_first = bench.snapshot();

    bench.clock.tick();
    bench.accept(&event);

    assert_eq!(bench.snapshot(), after_first);
}

#[test]
fn events_are_remembered_for_a_week_and_then_forgotten_by_the_flush() {
    let bench = Bench::connected();
    let old = Event::message_new(PERSON, 1, "a week ago");
    bench.accept(&old);
    bench
        .clock
        .advance(chrono::Duration::days(EVENT_RETENTION_DAYS) - chrono::Duration::hours(1));
    let recent = Event::message_new(PERSON, 2, "an hour later");
    bench.accept(&recent);
    assert_eq!(bench.count("event/"), 2);

    assert_eq!(bench.core().flush().expect("flush").events_forgotten, 0);
    assert_eq!(bench.count("event/"), 2, "nothing is a week old yet");

    bench.clock.advance(chrono::Duration::hours(2));
    assert_eq!(bench.core().flush().expect("flush").events_forgotten, 1);
    assert_eq!(bench.count("event/"), 1);
    assert_eq!(bench.count("index/event-time/"), 1);
    // The recent one is still a repeat; messages are kept whatever happens to the log.
    bench.accept(&recent);
    let reader = bench.hire();
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(bench.messages(reader, dialog.id).len(), 2);
    assert_eq!(bench.core().flush().expect("flush").events_forgotten, 0);
}

#[test]
fn events_recorded_before_the_time_list_existed_are_forgotten_too() {
    let bench = Bench::connected();
    // As an earlier version recorded them: the time it was processed, and no list entry.
    bench
        .store
        .commit(vec![Write {
            key: "event/from-an-earlier-version".into(),
            change: Change::Put(br#""2025-12-01T10:00:00Z""#.to_vec()),
            expect: None,
        }])
        .expect("commits");
    bench.accept(&Event::message_new(PERSON, 1, "today"));

    assert_eq!(bench.core().flush().expect("flush").events_forgotten, 1);
    assert_eq!(bench.count("event/"), 1, "today's event stays");
    assert_eq!(bench.core().flush().expect("flush").events_forgotten, 0);
}

#[test]
fn events_without_event_id_are_deduplicated_by_type_and_ids() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let first = Event::message_new(PERSON, 1042, "hello").without_event_id();

    for _ in 0..5 {
        bench.accept(&first);
    }
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(bench.messages(reader, dialog.id).len(), 1);

    // Another message (another VK id) is another event.
    bench.accept(&Event::message_new(PERSON, 1043, "are you there?").without_event_id());
    bench.accept(&Event::message_new(PERSON, 1043, "are you there?").without_event_id());
    let texts: Vec<String> = bench
        .messages(reader, dialog.id)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello", "are you there?"]);
}

#[test]
fn edits_without_event_id_are_told_apart_by_their_update_time() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "v1");

    let second = Event::message_edit(PERSON, 1042, "v2", 1_767_262_000).without_event_id();
    bench.accept(&second);
    bench.accept(&second);
    bench.accept(&Event::message_edit(PERSON, 1042, "v3", 1_767_262_100).without_event_id());

    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages[0].text, "v3");
    assert_eq!(messages[0].previous_texts, ["v1", "v2"]);
}

// ---- message_new -------------------------------------------------------------------------

#[test]
fn message_new_in_the_current_shape_is_stored() {
    let bench = Bench::connected();
    let reader = bench.hire();

    bench.accept(&Event::message_new(PERSON, 1042, "Сколько стоит доставка?"));

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "Сколько стоит доставка?");
    assert_eq!(messages[0].vk_id, Some(1042));
}

#[test]
fn message_new_in_the_old_shape_is_stored_the_same_way() {
    let bench = Bench::connected();
    let reader = bench.hire();

    bench.accept(&Event::message_new_old_shape(PERSON, 1042, "old API hello"));

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "old API hello");
    assert_eq!(messages[0].direction, Direction::Incoming);
    assert_eq!(bench.count("lead/"), 1);
}

#[test]
fn new_person_gets_a_lead_titled_by_the_community_and_name_and_a_queued_dialog() {
    let bench = Bench::connected();
    let reader = bench.hire();

    bench.accept(&Event::message_new(PERSON, 1042, "hello"));

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(dialog.status, DialogStatus::Open);
    assert_eq!(dialog.responsible, None);
    assert!(dialog.participants.is_empty());
    assert_eq!(dialog.peer_id, PERSON);
    assert_eq!(dialog.name, "Anna Smirnova");
    assert_eq!(dialog.started_at, vk_core::ports::Clock::now(&bench.clock));
    assert_eq!(
        bench.listed(reader, DialogStatus::Open),
        [dialog.id],
        "the new dialog waits in the queue"
    );

    let lead = bench.lead_of(reader, &dialog);
    assert_eq!(lead.title, "Tea House: Anna Smirnova");
    assert_eq!(lead.first_name, "Anna");
    assert_eq!(lead.last_name, "Smirnova");
    assert_eq!(lead.source, GROUP_NAME);
    assert_eq!(lead.status, LeadStatus::New);
    assert_eq!(lead.dialog_id, dialog.id);
    assert_eq!(lead.peer_id, PERSON);
    assert!(!lead.name_pending);

    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].direction, Direction::Incoming);
    assert_eq!(messages[0].author, None);
    assert_eq!(messages[0].delivery, None);
    assert_eq!(messages[0].dialog_id, dialog.id);

    let users_get = bench.vk.calls_to("users.get");
    assert_eq!(users_get.len(), 1);
    assert_eq!(users_get[0].param("user_ids"), PERSON.to_string());
    assert_eq!(users_get[0].param("access_token"), TOKEN);
    assert_eq!(users_get[0].param("v"), "5.199");
}

#[test]
fn name_lookup_is_bounded_tightly_so_the_answer_to_vk_is_fast() {
    let bench = Bench::connected();
    bench.accept(&Event::message_new(PERSON, 1042, "hello"));
    let call = &bench.vk.calls_to("users.get")[0];
    assert!(
        call.timeout_ms <= 2000,
        "users.get at intake may hold VK's answer up for {} ms",
        call.timeout_ms
    );
}

#[test]
fn next_message_of_a_known_person_appends_without_asking_vk_again() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.clock.tick();

    let again = bench.person_writes(PERSON, 1043, "anyone?");

    assert_eq!(again.id, dialog.id);
    assert_eq!(bench.count("lead/"), 1);
    assert_eq!(bench.vk.calls_to("users.get").len(), 1);
    let texts: Vec<String> = bench
        .messages(reader, dialog.id)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello", "anyone?"]);
}

#[test]
fn each_person_gets_their_own_lead_and_dialog() {
    let bench = Bench::connected();
    bench.vk.person(100, "Ivan", "Petrov");
    bench.vk.person(200, "Olga", "Sidorova");

    let ivan = bench.person_writes(100, 1, "hi");
    let olga = bench.person_writes(200, 2, "hi");

    assert_ne!(ivan.id, olga.id);
    assert_ne!(ivan.lead_id, olga.lead_id);
    assert_eq!(bench.count("lead/"), 2);
}

#[test]
fn messages_from_group_chats_and_communities_are_ignored() {
    let bench = Bench::connected();
    let before = bench.snapshot();

    let mut chat = Event::message_new(2_000_000_001, 0, "chat message");
    chat.object["message"]["from_id"] = json!(PERSON);
    bench.accept(&chat);
    bench.accept(&Event::message_new(-5, 7, "from a community"));

    assert_eq!(bench.count("lead/"), 0);
    assert_eq!(bench.count("dialog/"), 0);
    // Only the events' processed marks may have been written, nothing of the domain.
    let domain: Vec<_> = bench
        .snapshot()
        .into_iter()
        .filter(|e| !e.key.starts_with("event/"))
        .collect();
    let domain_before: Vec<_> = before
        .into_iter()
        .filter(|e| !e.key.starts_with("event/"))
        .collect();
    assert_eq!(domain, domain_before);
}

#[test]
fn failed_name_lookup_keeps_the_message_with_a_fallback_name() {
    for failure in [
        Failure::Vk(10),
        Failure::Vk(5),
        Failure::Status(500),
        Failure::Timeout,
    ] {
        let bench = Bench::connected();
        let reader = bench.hire();
        bench.vk.fail_next("users.get", failure.clone());

        assert_eq!(
            bench.deliver(&Event::message_new(PERSON, 1042, "hello")),
            Ok(CallbackReply::Ok),
            "{failure:?} must not lose the message"
        );

        let dialog = bench.dialog_of(PERSON).expect("a dialog");
        assert_eq!(dialog.name, "VK user 512340987");
        let lead = bench.lead_of(reader, &dialog);
        assert_eq!(lead.title, "Tea House: VK user 512340987");
        assert!(lead.name_pending);
        assert_eq!(bench.messages(reader, dialog.id).len(), 1);
    }
}

#[test]
fn flush_fills_in_the_name_vk_could_not_give_at_intake() {
    let bench = Bench::connected();
    let reader = bench.hire();
    bench.vk.fail_next("users.get", Failure::Timeout);
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    assert_eq!(bench.lead_of(reader, &dialog).first_name, "");

    // VK is still failing at the first flush: nothing changes, nothing is lost.
    bench.vk.fail_next("users.get", Failure::Vk(6));
    let report = bench.core().flush().expect("flush runs");
    assert_eq!(report.names_filled, 0);
    assert!(bench.lead_of(reader, &dialog).name_pending);

    let report = bench.core().flush().expect("flush runs");
    assert_eq!(report.names_filled, 1);

    let lead = bench.lead_of(reader, &dialog);
    assert_eq!(lead.title, "Tea House: Anna Smirnova");
    assert_eq!(
        (lead.first_name.as_str(), lead.last_name.as_str()),
        ("Anna", "Smirnova")
    );
    assert!(!lead.name_pending);
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(dialog.name, "Anna Smirnova");
    let (_, communication) = bench
        .core()
        .lead(reader, lead.id)
        .expect("the lead is readable");
    assert_eq!(communication.name, "Anna Smirnova");

    // Once filled, nobody asks again.
    let asked = bench.vk.calls_to("users.get").len();
    assert_eq!(bench.core().flush().expect("flush").names_filled, 0);
    assert_eq!(bench.vk.calls_to("users.get").len(), asked);
}

#[test]
fn without_an_access_key_the_name_waits_and_flush_fills_it_once_one_is_set() {
    let bench = Bench::connected();
    let reader = bench.hire();
    bench.change_settings(vk_core::settings::SettingsUpdate {
        access_token: Some(String::new()),
        ..Default::default()
    });

    let dialog = bench.person_writes(PERSON, 1042, "hello");
    assert!(bench.vk.calls().is_empty());
    assert_eq!(
        bench.lead_of(reader, &dialog).title,
        "Tea House: VK user 512340987"
    );
    assert_eq!(bench.core().flush().expect("flush").names_filled, 0);

    bench.change_settings(vk_core::settings::SettingsUpdate {
        access_token: Some(TOKEN.to_owned()),
        ..Default::default()
    });
    assert_eq!(bench.core().flush().expect("flush").names_filled, 1);
    assert_eq!(
        bench.lead_of(reader, &dialog).title,
        "Tea House: Anna Smirnova"
    );
}

#[test]
fn attachments_are_kept_with_type_url_and_title() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let event = Event::message_new(PERSON, 1043, "Вот фото повреждённой коробки").with_attachments(
        json!([
            {"type": "photo", "photo": {"id": 457_239_101, "owner_id": PERSON, "sizes": [
                {"type": "s", "width": 75, "height": 56, "url": "https://sun9-1.userapi.com/impg/example/s.jpg"},
                {"type": "z", "width": 1280, "height": 960, "url": "https://sun9-1.userapi.com/impg/example/z.jpg"},
                {"type": "x", "width": 604, "height": 453, "url": "https://sun9-1.userapi.com/impg/example/x.jpg"}
            ]}},
            {"type": "doc", "doc": {"id": 1, "owner_id": PERSON, "title": "invoice.pdf",
                                    "ext": "pdf", "url": "https://vk.com/doc512340987_1"}},
            {"type": "sticker", "sticker": {"product_id": 279, "sticker_id": 9014, "images": [
                {"url": "https://vk.com/sticker/1-9014-128", "width": 128, "height": 128},
                {"url": "https://vk.com/sticker/1-9014-256", "width": 256, "height": 256}
            ]}}
        ]),
    );

    bench.accept(&event);

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    let message = &bench.messages(reader, dialog.id)[0];
    let kept: Vec<(&str, Option<&str>, Option<&str>)> = message
        .attachments
        .iter()
        .map(|a| (a.kind.as_str(), a.url.as_deref(), a.title.as_deref()))
        .collect();
    assert_eq!(
        kept,
        [
            (
                "photo",
                Some("https://sun9-1.userapi.com/impg/example/z.jpg"),
                None
            ),
            (
                "doc",
                Some("https://vk.com/doc512340987_1"),
                Some("invoice.pdf")
            ),
            ("sticker", Some("https://vk.com/sticker/1-9014-256"), None),
        ]
    );
}

#[test]
fn attachments_in_the_old_shape_are_kept_too() {
    let bench = Bench::connected();
    let reader = bench.hire();
    bench.accept(
        &Event::message_new_old_shape(PERSON, 1042, "").with_attachments(json!([
            {"type": "audio_message", "audio_message": {"duration": 3,
                "link_mp3": "https://psv4.userapi.com/voice.mp3", "link_ogg": "https://psv4.userapi.com/voice.ogg"}}
        ])),
    );
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    let message = &bench.messages(reader, dialog.id)[0];
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(message.attachments[0].kind, "audio_message");
    assert_eq!(
        message.attachments[0].url.as_deref(),
        Some("https://psv4.userapi.com/voice.mp3")
    );
}

#[test]
fn twenty_simultaneous_first_messages_of_one_person_make_one_lead_and_one_dialog() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let events: Vec<Event> = (0..20)
        .map(|n| Event::message_new(PERSON, 2000 + n, &format!("message {n}")))
        .collect();

    std::thread::scope(|scope| {
        for event in &events {
            let bench = &bench;
            scope.spawn(move || {
                let core = vk_core::Core::new(&bench.store, &bench.vk, &bench.clock);
                assert_eq!(core.handle_callback(&event.body()), Ok(CallbackReply::Ok));
            });
        }
    });

    assert_eq!(bench.count("lead/"), 1);
    assert_eq!(bench.count("dialog/"), 1);
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(bench.listed(reader, DialogStatus::Open), [dialog.id]);
    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 20);
    let mut ids: Vec<i64> = messages.iter().filter_map(|m| m.vk_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (2000..2020).collect::<Vec<_>>());
    let history = bench.history(reader, dialog.id);
    assert_eq!(
        history
            .iter()
            .filter(|e| e.kind == EventKind::MessageIn)
            .count(),
        20
    );
}

#[test]
fn twenty_simultaneous_redeliveries_of_one_event_store_one_message() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let event = Event::message_new(PERSON, 1042, "hello");
    let body = event.body();

    std::thread::scope(|scope| {
        for _ in 0..20 {
            let (bench, body) = (&bench, &body);
            scope.spawn(move || {
                let core = vk_core::Core::new(&bench.store, &bench.vk, &bench.clock);
                assert_eq!(core.handle_callback(body), Ok(CallbackReply::Ok));
            });
        }
    });

    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(bench.messages(reader, dialog.id).len(), 1);
    assert_eq!(bench.count("lead/"), 1);
}

// ---- message_reply -----------------------------------------------------------------------

#[test]
fn echo_of_our_send_is_matched_by_random_id_and_not_stored_twice() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");
    let sent = bench
        .core()
        .send(operator, dialog.id, "Доставка — 350 ₽")
        .expect("send");
    let delivered = bench.vk.delivered()[0].clone();
    assert_eq!(Some(delivered.random_id), sent.random_id);

    // The echo carries our random_id; match on it alone (VK id unknown to the index).
    let mut echo = Event::echo(&delivered);
    echo.object["id"] = json!(0);
    bench.accept(&echo);
    bench.accept(&Event::echo(&delivered));

    let messages = bench.messages(operator, dialog.id);
    assert_eq!(messages.len(), 2, "hello + our answer, nothing more");
    assert_eq!(messages[1].id, sent.id);
    assert_eq!(messages[1].delivery, Some(Delivery::Sent));
    assert_eq!(messages[1].author, Some(operator));
    assert_eq!(messages[1].vk_id, Some(delivered.vk_id));
}

#[test]
fn echo_of_our_send_is_matched_by_vk_id_and_not_stored_twice() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");
    bench
        .core()
        .send(operator, dialog.id, "answer")
        .expect("send");
    let delivered = bench.vk.delivered()[0].clone();

    // Without random_id, VK's message id alone identifies our message.
    bench.accept(&Event::message_reply(
        PERSON,
        delivered.vk_id,
        0,
        &delivered.text,
    ));

    let messages = bench.messages(operator, dialog.id);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].author, Some(operator));
}

#[test]
fn echo_that_comes_before_vk_answers_settles_the_send_and_nothing_is_sent_again() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");
    bench
        .vk
        .fail_next("messages.send", Failure::TimeoutAfterDelivery);

    let sent = bench
        .core()
        .send(operator, dialog.id, "answer")
        .expect("send");
    assert_eq!(sent.delivery, Some(Delivery::Pending));

    let delivered = bench.vk.delivered()[0].clone();
    bench.accept(&Event::echo(&delivered));

    let messages = bench.messages(operator, dialog.id);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].delivery, Some(Delivery::Sent));
    assert_eq!(messages[1].vk_id, Some(delivered.vk_id));

    bench.clock.advance(chrono::Duration::minutes(10));
    for _ in 0..3 {
        bench.core().flush().expect("flush");
    }
    assert_eq!(bench.vk.calls_to("messages.send").len(), 1);
    assert_eq!(bench.vk.delivered().len(), 1);
}

#[test]
fn reply_typed_by_an_admin_in_vk_is_stored_as_outgoing_without_author() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.clock.tick();

    let reply = Event::admin_reply(PERSON, 1050, "Отвечу из VK", 600_100_200);
    bench.accept(&reply);
    bench.accept(&reply);

    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 2);
    let admin = &messages[1];
    assert_eq!(admin.direction, Direction::Outgoing);
    assert_eq!(admin.author, None);
    assert_eq!(admin.text, "Отвечу из VK");
    assert_eq!(admin.delivery, Some(Delivery::Sent));
    assert_eq!(admin.vk_id, Some(1050));
    assert!(
        bench
            .history(reader, dialog.id)
            .iter()
            .any(|e| e.kind == EventKind::MessageOut && e.actor.is_none())
    );
}

#[test]
fn reply_to_someone_without_a_dialog_is_acknowledged_and_ignored() {
    let bench = Bench::connected();
    bench.accept(&Event::admin_reply(777, 1, "hello from admin", 600_100_200));
    assert_eq!(bench.count("dialog/"), 0);
    assert_eq!(bench.count("lead/"), 0);
}

// ---- message_edit ------------------------------------------------------------------------

#[test]
fn message_edit_updates_the_text_and_keeps_the_previous_one() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "Сколько стоит доставка в Казань?");

    bench.accept(&Event::message_edit(
        PERSON,
        1042,
        "Сколько стоит доставка в Казань и в Самару?",
        1_767_261_900,
    ));

    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].text,
        "Сколько стоит доставка в Казань и в Самару?"
    );
    assert_eq!(
        messages[0].previous_texts,
        ["Сколько стоит доставка в Казань?"]
    );
    let edited_at = messages[0].edited_at.expect("an edit time");
    assert_eq!(edited_at.timestamp(), 1_767_261_900);
}

#[test]
fn edit_of_an_unknown_message_is_acknowledged_and_changes_nothing_else() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");

    bench.accept(&Event::message_edit(PERSON, 9999, "ghost", 1_767_261_900));

    let messages = bench.messages(reader, dialog.id);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "hello");
}

// ---- message_allow / message_deny ---------------------------------------------------------

#[test]
fn message_deny_makes_send_refused_before_any_call_to_vk() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");

    bench.accept(&Event::message_deny(PERSON));
    assert!(!bench.dialog_of(PERSON).expect("dialog").messages_allowed);
    let calls = bench.vk.calls().len();
    let before = bench.snapshot();

    let refused = bench.core().send(operator, dialog.id, "are you there?");

    assert_eq!(refused, Err(Error::MessagesDenied));
    assert_eq!(
        refused.expect_err("refused").kind(),
        vk_core::ErrorKind::Conflict
    );
    assert_eq!(bench.vk.calls().len(), calls, "VK was not called");
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn message_allow_after_deny_enables_sending_again() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");
    bench.accept(&Event::message_deny(PERSON));

    bench.accept(&Event::message_allow(PERSON));

    assert!(bench.dialog_of(PERSON).expect("dialog").messages_allowed);
    let sent = bench
        .core()
        .send(operator, dialog.id, "welcome back")
        .expect("send works again");
    assert_eq!(sent.delivery, Some(Delivery::Sent));
    assert_eq!(bench.vk.delivered().len(), 1);
}

#[test]
fn allow_or_deny_from_someone_without_a_dialog_is_acknowledged() {
    let bench = Bench::connected();
    assert_eq!(
        bench.deliver(&Event::message_allow(777)),
        Ok(CallbackReply::Ok)
    );
    assert_eq!(
        bench.deliver(&Event::message_deny(777)),
        Ok(CallbackReply::Ok)
    );
    assert_eq!(bench.count("dialog/"), 0);
}

// ---- closed dialogs ----------------------------------------------------------------------

#[test]
fn message_to_a_finished_dialog_reopens_it_for_the_last_responsible_with_the_same_lead() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.clock.tick();
    bench.core().claim(operator, dialog.id).expect("claim");
    bench.clock.tick();
    bench.core().finish(operator, dialog.id).expect("finish");
    bench.clock.tick();

    let reopened = bench.person_writes(PERSON, 1043, "one more question");

    assert_eq!(reopened.id, dialog.id);
    assert_eq!(reopened.lead_id, dialog.lead_id);
    assert_eq!(reopened.status, DialogStatus::Open);
    assert_eq!(reopened.responsible, Some(operator));
    assert_eq!(reopened.participants, [operator]);
    assert_eq!(bench.count("lead/"), 1);
    assert_eq!(bench.count("dialog/"), 1);
    assert_eq!(bench.listed(operator, DialogStatus::Open), [dialog.id]);
    assert!(bench.listed(operator, DialogStatus::Finished).is_empty());

    let history = bench.history(operator, dialog.id);
    let kinds: Vec<EventKind> = history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::MessageIn,
            EventKind::Claimed,
            EventKind::Finished,
            EventKind::Reopened,
            EventKind::MessageIn
        ]
    );
    assert_eq!(history[3].subject, Some(operator));
}

#[test]
fn message_to_a_finished_dialog_whose_operator_left_the_list_goes_to_the_queue() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let colleague = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello");
    bench.core().claim(operator, dialog.id).expect("claim");
    bench.core().finish(operator, dialog.id).expect("finish");
    bench.dismiss(operator);
    bench.clock.tick();

    let reopened = bench.person_writes(PERSON, 1043, "hello again");

    assert_eq!(reopened.status, DialogStatus::Open);
    assert_eq!(reopened.responsible, None);
    assert_eq!(bench.listed(colleague, DialogStatus::Open), [dialog.id]);
}

#[test]
fn message_to_a_spam_dialog_is_stored_but_the_dialog_stays_spam() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "buy followers");
    bench.core().claim(operator, dialog.id).expect("claim");
    bench
        .core()
        .close_as_spam(operator, dialog.id)
        .expect("spam");
    bench.clock.tick();

    let after = bench.person_writes(PERSON, 1043, "cheap followers!!!");

    assert_eq!(after.id, dialog.id);
    assert_eq!(after.status, DialogStatus::Spam);
    assert_eq!(after.responsible, None);
    assert_eq!(bench.messages(operator, dialog.id).len(), 2);
    assert_eq!(bench.listed(operator, DialogStatus::Spam), [dialog.id]);
    assert!(bench.listed(operator, DialogStatus::Open).is_empty());
    assert_eq!(bench.count("lead/"), 1);
}
