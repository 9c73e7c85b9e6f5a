//! What the operator workspace reads (issue 10): each dialog's activity at a glance (last
//! message, waiting time, unread counts and read markers), the lists of the open lines by
//! last activity with their counts, the searchable lists of leads, counterparties and
//! orders, the channel's state, and the change stamp. Records stored before these lists
//! existed are listed by the flush.

mod common;

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::json;
use vk_core::dialog::{Dialog, DialogCounts, DialogList, Direction, Page};
use vk_core::ids::{DialogId, EmployeeId, LeadId};
use vk_core::lead::NewItem;
use vk_core::ports::{Change, Clock, Entry, Store, StoreError, Write};
use vk_core::{Core, Error};

fn now(bench: &Bench) -> DateTime<Utc> {
    bench.clock.now()
}

fn list(bench: &Bench, actor: EmployeeId, list: DialogList) -> Vec<DialogId> {
    bench
        .core()
        .dialogs(actor, list, None, 200)
        .expect("the list is readable")
        .items
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn read(bench: &Bench, reader: EmployeeId, id: DialogId) -> Dialog {
    bench
        .core()
        .dialog(reader, id)
        .expect("the dialog is readable")
}

fn stamp(bench: &Bench) -> String {
    bench.core().change_stamp().expect("the stamp is readable")
}

/// Stores raw writes, as an earlier version or a test's set-up would have.
fn write(bench: &Bench, writes: Vec<(String, Change)>) {
    let writes = writes
        .into_iter()
        .map(|(key, change)| Write {
            key,
            change,
            expect: None,
        })
        .collect();
    bench.store.commit(writes).expect("commits");
}

/// Deletes every key under a prefix.
fn forget(bench: &Bench, prefix: &str) {
    let keys = bench
        .store
        .scan(prefix, None, u32::MAX)
        .expect("scans")
        .into_iter()
        .map(|e| (e.key, Change::Delete))
        .collect();
    write(bench, keys);
}

/// A person known to the fake VK writes their first message.
fn new_person(bench: &Bench, peer: i64, first: &str, last: &str) -> Dialog {
    bench.vk.person(peer, first, last);
    let dialog = bench.person_writes(peer, peer * 100, "hello");
    bench.clock.tick();
    dialog
}

fn tea() -> NewItem {
    NewItem {
        name: "Пуэр".into(),
        quantity: "1".into(),
        price: "150".into(),
        ..NewItem::default()
    }
}

fn convert(bench: &Bench, operator: EmployeeId, lead: LeadId) {
    bench.core().add_item(operator, lead, tea()).expect("add");
    bench.core().convert(operator, lead).expect("convert");
    bench.clock.tick();
}

// ---- a dialog at a glance ------------------------------------------------------------------

#[test]
fn a_dialog_shows_its_last_message_and_since_when_the_person_waits() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let first = now(&bench);
    let dialog = bench.person_writes(PERSON, 1, "Здравствуйте!\nХочу торт");
    let activity = &dialog.activity;
    assert_eq!(dialog.last_activity_at(), first);
    let last = activity.last_message.as_ref().expect("a last message");
    assert_eq!(
        (last.direction, last.text.as_str(), last.at),
        (Direction::Incoming, "Здравствуйте!", first)
    );
    assert_eq!(activity.waiting_since, Some(first));

    // Waiting since the first unanswered message, whatever comes after it.
    bench.clock.tick();
    let dialog = bench.person_writes(PERSON, 2, "Вы тут?");
    assert_eq!(dialog.activity.waiting_since, Some(first));
    assert_eq!(dialog.last_activity_at(), now(&bench));

    // An answer ends the wait.
    bench.core().claim(anna, dialog.id).expect("claim");
    bench.clock.tick();
    let answered = now(&bench);
    bench.core().send(anna, dialog.id, "Да!").expect("send");
    let dialog = read(&bench, anna, dialog.id);
    let last = dialog
        .activity
        .last_message
        .as_ref()
        .expect("a last message");
    assert_eq!(
        (last.direction, last.text.as_str(), last.at),
        (Direction::Outgoing, "Да!", answered)
    );
    assert_eq!(dialog.activity.waiting_since, None);
    assert_eq!(dialog.last_activity_at(), answered);

    // A new question waits again; a reply typed in VK answers it too.
    bench.clock.tick();
    let asked = now(&bench);
    let dialog = bench.person_writes(PERSON, 3, "А доставка?");
    assert_eq!(dialog.activity.waiting_since, Some(asked));
    bench.clock.tick();
    bench.accept(&Event::admin_reply(PERSON, 4, "Бесплатно", 1));
    let dialog = read(&bench, anna, dialog.id);
    assert_eq!(dialog.activity.waiting_since, None);
    assert_eq!(dialog.last_activity_at(), now(&bench));
}

#[test]
fn the_preview_is_the_first_line_with_text_cut_at_200_characters() {
    let bench = Bench::connected();
    let long = "я".repeat(300);
    let dialog = bench.person_writes(PERSON, 1, &format!("\n  \n{long}  \nвторая строка"));
    let preview = &dialog.activity.last_message.expect("a last message").text;
    assert_eq!(*preview, "я".repeat(200));

    let photo = json!([{"type": "photo", "photo": {"sizes": []}}]);
    bench.accept(&Event::message_new(PERSON, 2, "").with_attachments(photo));
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(
        dialog.activity.last_message.expect("a last message").text,
        ""
    );
}

#[test]
fn an_edit_of_the_last_message_changes_the_preview_and_of_an_earlier_one_does_not() {
    let bench = Bench::connected();
    bench.person_writes(PERSON, 1, "first");
    bench.person_writes(PERSON, 2, "second");

    bench.accept(&Event::message_edit(
        PERSON,
        1,
        "first, edited",
        1_767_261_900,
    ));
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(dialog.activity.last_message.expect("last").text, "second");

    bench.accept(&Event::message_edit(
        PERSON,
        2,
        "second, edited",
        1_767_261_901,
    ));
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    assert_eq!(
        dialog.activity.last_message.expect("last").text,
        "second, edited"
    );
}

// ---- unread and the read marker --------------------------------------------------------------

#[test]
fn unread_counts_incoming_messages_since_each_employees_read_marker() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let boris = bench.hire();
    let id = bench.person_writes(PERSON, 1, "one").id;
    bench.person_writes(PERSON, 2, "two");
    let dialog = read(&bench, anna, id);
    assert_eq!((dialog.unread(anna), dialog.unread(boris)), (2, 2));

    let marked = bench.core().mark_read(anna, id).expect("read");
    assert_eq!((marked.unread(anna), marked.unread(boris)), (0, 2));
    assert_eq!(read(&bench, boris, id), marked);

    bench.clock.tick();
    bench.person_writes(PERSON, 3, "three");
    let dialog = read(&bench, anna, id);
    assert_eq!((dialog.unread(anna), dialog.unread(boris)), (1, 3));

    // Whoever answers has read what they answer.
    bench.core().claim(boris, id).expect("claim");
    bench.core().send(boris, id, "hello").expect("send");
    let dialog = read(&bench, anna, id);
    assert_eq!((dialog.unread(anna), dialog.unread(boris)), (1, 0));
}

#[test]
fn reading_moves_nothing_in_the_lists_and_works_on_closed_dialogs_too() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let older = new_person(&bench, 1, "Old", "One").id;
    let newer = new_person(&bench, 2, "New", "One").id;

    bench.core().mark_read(anna, older).expect("read");
    assert_eq!(list(&bench, anna, DialogList::Queue), [newer, older]);

    bench.core().claim(anna, older).expect("claim");
    bench.core().close_as_spam(anna, older).expect("spam");
    let marked = bench.core().mark_read(anna, older).expect("read");
    assert_eq!(marked.unread(anna), 0);
}

#[test]
fn read_needs_a_listed_employee_and_an_existing_dialog_and_changes_nothing_otherwise() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let id = bench.person_writes(PERSON, 1, "one").id;
    let before = bench.snapshot();

    assert!(matches!(
        bench.core().mark_read(EmployeeId::new(), id),
        Err(Error::EmployeeNotListed(_))
    ));
    assert_eq!(
        bench.core().mark_read(anna, DialogId::new()),
        Err(Error::DialogNotFound)
    );
    assert_eq!(bench.snapshot(), before);
}

// ---- the lists of the open lines -------------------------------------------------------------

#[test]
fn a_person_writing_again_moves_their_dialog_to_the_top_of_its_lists() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let d1 = new_person(&bench, 1, "P", "One").id;
    let d2 = new_person(&bench, 2, "P", "Two").id;
    let d3 = new_person(&bench, 3, "P", "Three").id;
    assert_eq!(list(&bench, anna, DialogList::Queue), [d3, d2, d1]);

    bench.person_writes(1, 101, "me again");
    bench.clock.tick();
    for tab in [DialogList::Queue, DialogList::All, DialogList::Open] {
        assert_eq!(list(&bench, anna, tab), [d1, d3, d2], "{tab:?}");
    }

    // An answer is activity too; so is a message in a dialog closed as spam.
    bench.core().claim(anna, d2).expect("claim");
    bench.core().send(anna, d2, "hi").expect("send");
    bench.clock.tick();
    assert_eq!(list(&bench, anna, DialogList::All), [d2, d1, d3]);
    assert_eq!(list(&bench, anna, DialogList::Mine), [d2]);
    for id in [d1, d3] {
        bench.core().claim(anna, id).expect("claim");
        bench.core().close_as_spam(anna, id).expect("spam");
    }
    assert_eq!(list(&bench, anna, DialogList::Spam), [d1, d3]);
    bench.person_writes(3, 301, "not spam, really");
    assert_eq!(list(&bench, anna, DialogList::Spam), [d3, d1]);
}

#[test]
fn queue_mine_and_all_list_what_their_tabs_say_and_are_counted() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let boris = bench.hire();
    let queued = new_person(&bench, 1, "P", "One").id;
    let annas = new_person(&bench, 2, "P", "Two").id;
    let shared = new_person(&bench, 3, "P", "Three").id;
    let closed = new_person(&bench, 4, "P", "Four").id;
    let core = bench.core();
    core.claim(anna, annas).expect("claim");
    core.claim(boris, shared).expect("claim");
    core.invite(boris, shared, &[anna]).expect("invite");
    core.claim(boris, closed).expect("claim");
    core.finish(boris, closed).expect("finish");

    assert_eq!(list(&bench, anna, DialogList::Queue), [queued]);
    assert_eq!(list(&bench, anna, DialogList::Mine), [shared, annas]);
    assert_eq!(list(&bench, boris, DialogList::Mine), [shared]);
    assert_eq!(
        list(&bench, boris, DialogList::All),
        [shared, annas, queued]
    );
    assert_eq!(list(&bench, boris, DialogList::Open), [shared, queued]);
    assert_eq!(list(&bench, boris, DialogList::Finished), [closed]);

    assert_eq!(
        core.dialog_counts(anna),
        Ok(DialogCounts {
            queue: 1,
            mine: 2,
            all: 3
        })
    );
    assert_eq!(
        core.dialog_counts(boris),
        Ok(DialogCounts {
            queue: 1,
            mine: 1,
            all: 3
        })
    );
    assert!(matches!(
        core.dialog_counts(EmployeeId::new()),
        Err(Error::EmployeeNotListed(_))
    ));
}

#[test]
fn counts_stop_at_a_thousand() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let entries = (0..1001)
        .map(|n| {
            let id = DialogId::new();
            (
                format!("index/open/{n:020}.{id}"),
                Change::Put(serde_json::to_vec(&id).expect("an id serializes")),
            )
        })
        .collect();
    write(&bench, entries);
    assert_eq!(bench.core().dialog_counts(anna).map(|c| c.all), Ok(1000));
}

// ---- leads, counterparties and orders ---------------------------------------------------------

#[test]
fn documents_are_listed_newest_first_and_found_by_name_in_any_case() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let first = new_person(&bench, 1, "Анна", "Смирнова");
    let second = new_person(&bench, 2, "Boris", "Ivanov");
    let third = new_person(&bench, 3, "Вера", "Смирнова");
    let leads = |q: &str| -> Vec<LeadId> {
        let page = bench.core().leads(anna, q, None, 50).expect("leads");
        assert_eq!(page.next, None);
        page.items.iter().map(|(lead, _)| lead.id).collect()
    };
    assert_eq!(leads(""), [third.lead_id, second.lead_id, first.lead_id]);
    assert_eq!(leads("СМИРНОВА"), [third.lead_id, first.lead_id]);
    assert_eq!(leads("tea house: boris"), [second.lead_id], "the title");
    assert!(leads("Никто").is_empty());

    // Each item is the lead as its own read gives it, communication block included.
    let page = bench.core().leads(anna, "вера", None, 50).expect("leads");
    assert_eq!(
        page.items,
        [bench.core().lead(anna, third.lead_id).expect("the lead")]
    );

    convert(&bench, anna, first.lead_id);
    convert(&bench, anna, third.lead_id);
    let counterparties = bench.core().counterparties(anna, "анна", None, 50);
    let counterparties = counterparties.expect("counterparties").items;
    assert_eq!(counterparties.len(), 1);
    let (counterparty, communication) = &counterparties[0];
    assert_eq!(counterparty.name, "Анна Смирнова");
    assert_eq!(communication.dialog_id, first.id);

    let orders = |q: &str| -> Vec<String> {
        let page = bench.core().orders(anna, q, None, 50).expect("orders");
        page.items.into_iter().map(|(o, _)| o.number).collect()
    };
    assert_eq!(orders(""), ["VK-00002", "VK-00001"]);
    assert_eq!(orders("vk-00001"), ["VK-00001"]);
    assert_eq!(orders("вера"), ["VK-00002"], "the counterparty's name");
    assert!(matches!(
        bench.core().orders(EmployeeId::new(), "", None, 50),
        Err(Error::EmployeeNotListed(_))
    ));
}

#[test]
fn document_lists_page_with_next_until_every_match_was_seen_once() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let mut expected = Vec::new();
    for peer in 1..=7 {
        let last = if peer % 2 == 0 { "Even" } else { "Odd" };
        let dialog = new_person(&bench, peer, "P", last);
        if last == "Odd" {
            expected.push(dialog.lead_id);
        }
    }
    expected.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: Page<_> = bench
            .core()
            .leads(anna, "odd", cursor.as_deref(), 3)
            .expect("a page");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|(lead, _)| lead.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn a_search_looks_at_2000_entries_per_page_and_says_where_to_go_on() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let needle = new_person(&bench, 1, "Needle", "Haystack").lead_id;
    for peer in 2..=2001 {
        bench.person_writes(peer, 1, "hi");
    }
    let first = bench.core().leads(anna, "needle", None, 50).expect("leads");
    assert!(first.items.is_empty());
    let next = first.next.expect("where to go on");
    let second = bench
        .core()
        .leads(anna, "needle", Some(&next), 50)
        .expect("leads");
    let found: Vec<LeadId> = second.items.iter().map(|(l, _)| l.id).collect();
    assert_eq!((found, second.next), (vec![needle], None));
}

#[test]
fn a_lead_named_after_intake_is_found_by_its_name() {
    let bench = Bench::connected();
    let anna = bench.hire();
    bench.vk.fail_next("users.get", Failure::Timeout);
    let dialog = bench.person_writes(PERSON, 1, "hello");
    let found = |q: &str| {
        bench
            .core()
            .leads(anna, q, None, 50)
            .expect("leads")
            .items
            .len()
    };
    assert_eq!((found("vk user"), found("anna")), (1, 0));

    bench.core().flush().expect("flush");
    assert_eq!(bench.lead_of(anna, &dialog).first_name, PERSON_FIRST);
    assert_eq!((found("vk user"), found("anna")), (0, 1));
}

// ---- records stored before the lists existed ---------------------------------------------------

#[test]
fn records_stored_before_their_lists_existed_are_listed_by_the_flush() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let converted = new_person(&bench, 1, "Анна", "Смирнова");
    convert(&bench, anna, converted.lead_id);
    let waiting = new_person(&bench, 2, "Boris", "Ivanov");
    // As an earlier version stored them: no activity on the dialogs, and none of the new lists.
    for dialog in [&converted, &waiting] {
        let key = format!("dialog/{}", dialog.id);
        let mut old: serde_json::Value = bench.record(&key).expect("the dialog");
        old.as_object_mut().expect("an object").remove("activity");
        write(
            &bench,
            vec![(key, Change::Put(serde_json::to_vec(&old).expect("JSON")))],
        );
    }
    for prefix in [
        "index/open/",
        "index/leads/",
        "index/counterparties/",
        "index/orders/",
        "migration/",
    ] {
        forget(&bench, prefix);
    }

    let dialog = read(&bench, anna, waiting.id);
    assert_eq!(dialog.last_activity_at(), dialog.started_at);
    assert_eq!(
        (dialog.unread(anna), dialog.activity.last_message),
        (0, None)
    );
    // The lists that existed keep working; the new ones miss these records.
    assert_eq!(
        list(&bench, anna, DialogList::Queue),
        [waiting.id, converted.id]
    );
    assert!(list(&bench, anna, DialogList::All).is_empty());
    assert!(
        bench
            .core()
            .leads(anna, "", None, 50)
            .expect("leads")
            .items
            .is_empty()
    );

    bench.core().flush().expect("flush");

    assert_eq!(
        list(&bench, anna, DialogList::All),
        [waiting.id, converted.id]
    );
    let core = bench.core();
    let leads = core.leads(anna, "", None, 50).expect("leads").items;
    let counterparties = core.counterparties(anna, "анна", None, 50);
    let orders = core
        .orders(anna, "смирнова", None, 50)
        .expect("orders")
        .items;
    assert_eq!(
        (
            leads.len(),
            counterparties.expect("counterparties").items.len(),
            orders.len()
        ),
        (2, 1, 1)
    );
    // A dialog of an earlier version moves up like any other once the person writes.
    bench.person_writes(1, 102, "again");
    assert_eq!(
        list(&bench, anna, DialogList::All),
        [converted.id, waiting.id]
    );
}

// ---- the channel's state -------------------------------------------------------------------------

#[test]
fn the_channel_state_says_confirmed_when_vk_last_wrote_and_what_waits() {
    let bench = Bench::configured();
    let state = bench.core().channel_state().expect("the state");
    assert!(!state.confirmed);
    assert_eq!((state.last_event_at, state.messages_waiting), (None, 0));

    bench.deliver(&Event::confirmation()).expect("confirmed");
    let state = bench.core().channel_state().expect("the state");
    assert!(state.confirmed);
    assert_eq!(state.last_event_at, None, "a confirmation is not an event");

    let message = Event::message_new(PERSON, 1, "hello");
    let at = now(&bench);
    bench.accept(&message);
    bench.clock.tick();
    // A repeat and an event type the integration ignores are not counted.
    bench.accept(&message);
    bench.accept(&Event {
        kind: "wall_post_new".into(),
        group_id: GROUP_ID,
        event_id: Some(fresh_event_id()),
        secret: Some(SECRET.into()),
        object: json!({"id": 1}),
    });
    let state = bench.core().channel_state().expect("the state");
    assert_eq!(state.last_event_at, Some(at));

    let anna = bench.hire();
    let dialog = bench.dialog_of(PERSON).expect("a dialog").id;
    bench.core().claim(anna, dialog).expect("claim");
    bench.vk.fail_next("messages.send", Failure::Timeout);
    bench.core().send(anna, dialog, "hi").expect("send");
    assert_eq!(
        bench.core().channel_state().map(|s| s.messages_waiting),
        Ok(1)
    );
    bench.clock.advance(Duration::seconds(2));
    bench.core().flush().expect("flush");
    assert_eq!(
        bench.core().channel_state().map(|s| s.messages_waiting),
        Ok(0)
    );
}

#[test]
fn messages_waiting_are_counted_up_to_a_thousand() {
    let bench = Bench::connected();
    let entries = (0..1001)
        .map(|n| {
            let pending = json!({"peer_id": 1, "attempts": 0, "next_at": "2030-01-01T00:00:00Z",
                                 "lease_until": null});
            (
                format!("outbox/message/x/{n:05}"),
                Change::Put(serde_json::to_vec(&pending).expect("JSON")),
            )
        })
        .collect();
    write(&bench, entries);
    assert_eq!(
        bench.core().channel_state().map(|s| s.messages_waiting),
        Ok(1000)
    );
}

// ---- the change stamp ------------------------------------------------------------------------------

#[test]
fn the_change_stamp_changes_with_everything_an_operator_sees() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let mut last = stamp(&bench);
    let mut changed = |what: &str| {
        let now = stamp(&bench);
        assert_ne!(now, last, "{what} changed the stamp");
        last = now;
    };

    let dialog = bench.person_writes(PERSON, 1, "hello");
    changed("a new dialog");
    bench.person_writes(PERSON, 2, "again");
    changed("a new message");
    bench.core().claim(anna, dialog.id).expect("claim");
    changed("a claim");
    bench.vk.fail_next("messages.send", Failure::Timeout);
    bench.core().send(anna, dialog.id, "hi").expect("send");
    changed("a send");
    bench.clock.advance(Duration::seconds(2));
    assert_eq!(bench.core().flush().expect("flush").sent, 1);
    changed("a delivery");
    bench.core().mark_read(anna, dialog.id).expect("read");
    changed("a read marker");
    bench
        .core()
        .add_item(anna, dialog.lead_id, tea())
        .expect("add");
    changed("goods");
    bench.core().convert(anna, dialog.lead_id).expect("convert");
    changed("a conversion");
}

#[test]
fn the_change_stamp_stays_while_nothing_an_operator_sees_changes() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let message = Event::message_new(PERSON, 1, "hello");
    bench.accept(&message);
    let dialog = bench.dialog_of(PERSON).expect("a dialog");
    let before = stamp(&bench);

    let core = bench.core();
    core.dialogs(anna, DialogList::All, None, 50).expect("list");
    core.dialog_counts(anna).expect("counts");
    core.messages(anna, dialog.id, None, 50).expect("messages");
    core.leads(anna, "", None, 50).expect("leads");
    core.channel_state().expect("channel");
    bench.accept(&message);
    assert!(core.finish(anna, dialog.id).is_err());
    // A flush with nothing to send lists what is listed already: it writes only its progress.
    core.flush().expect("flush");
    core.flush().expect("flush");

    assert_eq!(stamp(&bench), before);
}

/// A store that keeps every commit it is given.
struct Recording {
    inner: vk_core::memory::MemoryStore,
    commits: Mutex<Vec<Vec<Write>>>,
}

impl Store for Recording {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.commits.lock().expect("lock").push(writes.clone());
        self.inner.commit(writes)
    }
}

#[test]
fn the_stamp_and_the_last_event_time_never_make_commits_conflict() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let store = Recording {
        inner: vk_core::memory::MemoryStore::new(),
        commits: Mutex::new(Vec::new()),
    };
    // The bench's state, copied.
    let copy = bench
        .snapshot()
        .into_iter()
        .map(|e| Write {
            key: e.key,
            change: Change::Put(e.value),
            expect: None,
        })
        .collect();
    store.inner.commit(copy).expect("copied");
    let core = Core::new(&store, &bench.vk, &bench.clock);
    core.handle_callback(&Event::message_new(PERSON, 1, "hello").body())
        .expect("accepted");
    let entry = store.get(&format!("peer/{PERSON}")).expect("reads");
    let id: DialogId =
        serde_json::from_slice(&entry.expect("the person's dialog").value).expect("an id");
    core.claim(anna, id).expect("claim");
    core.send(anna, id, "hi").expect("send");

    let commits = store.commits.lock().expect("lock");
    assert!(commits.len() >= 3);
    for key in ["changes", "channel/last-event"] {
        let touching: Vec<&Write> = commits.iter().flatten().filter(|w| w.key == key).collect();
        assert!(!touching.is_empty(), "{key} is written");
        for write in touching {
            assert!(
                matches!(write.change, Change::Put(_)) && write.expect.is_none(),
                "{key} is only ever put unconditionally: {write:?}"
            );
        }
    }
}
