//! Open lines (SPEC §2 "Dialog commands"): who may claim, send, invite, leave, delegate,
//! close, finish and restore; history; the open-lines lists. A refused command changes
//! nothing.

mod common;

use common::*;
use vk_core::Error;
use vk_core::dialog::{Dialog, DialogStatus, EventKind};
use vk_core::ids::{DialogId, EmployeeId};

/// A connected bench with one dialog waiting in the queue and three listed employees.
struct Line {
    bench: Bench,
    dialog: DialogId,
    anna: EmployeeId,
    boris: EmployeeId,
    vera: EmployeeId,
}

fn line() -> Line {
    let bench = Bench::connected();
    let anna = bench.hire();
    let boris = bench.hire();
    let vera = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello").id;
    bench.clock.tick();
    Line {
        bench,
        dialog,
        anna,
        boris,
        vera,
    }
}

impl Line {
    fn get(&self) -> Dialog {
        self.bench
            .core()
            .dialog(self.anna, self.dialog)
            .expect("the dialog is readable")
    }

    /// Runs a command that must be refused with `expected`, and proves it changed nothing.
    fn refused(&self, expected: Error, command: impl FnOnce() -> Result<Dialog, Error>) {
        let before = self.bench.snapshot();
        let calls = self.bench.vk.calls().len();
        assert_eq!(command().map(|d| d.id), Err(expected));
        assert_eq!(
            self.bench.snapshot(),
            before,
            "a refused command changed state"
        );
        assert_eq!(
            self.bench.vk.calls().len(),
            calls,
            "a refused command called VK"
        );
    }

    fn claimed_by_anna(self) -> Self {
        self.bench
            .core()
            .claim(self.anna, self.dialog)
            .expect("anna claims");
        self.bench.clock.tick();
        self
    }
}

// ---- claim -------------------------------------------------------------------------------

#[test]
fn listed_employee_claims_an_unassigned_dialog_and_becomes_responsible() {
    let line = line();

    let dialog = line
        .bench
        .core()
        .claim(line.anna, line.dialog)
        .expect("claim");

    assert_eq!(dialog.responsible, Some(line.anna));
    assert_eq!(dialog.participants, [line.anna]);
    assert_eq!(dialog.last_responsible, Some(line.anna));
    assert_eq!(dialog.operators, [line.anna]);
    assert_eq!(line.get(), dialog, "the claim is stored");
    // Out of the queue: Boris no longer sees it; Anna sees it as hers.
    assert!(line.bench.listed(line.boris, DialogStatus::Open).is_empty());
    assert_eq!(
        line.bench.listed(line.anna, DialogStatus::Open),
        [line.dialog]
    );
}

#[test]
fn claim_by_unlisted_employee_is_refused() {
    let line = line();
    let stranger = EmployeeId::new();
    line.refused(Error::EmployeeNotListed(stranger.to_string()), || {
        line.bench.core().claim(stranger, line.dialog)
    });
}

#[test]
fn claim_of_a_claimed_dialog_is_refused_as_already_claimed() {
    let line = line().claimed_by_anna();
    line.refused(Error::AlreadyClaimed, || {
        line.bench.core().claim(line.boris, line.dialog)
    });
    line.refused(Error::AlreadyClaimed, || {
        line.bench.core().claim(line.anna, line.dialog)
    });
}

#[test]
fn claim_of_a_closed_dialog_is_refused() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    line.refused(Error::DialogNotOpen, || {
        line.bench.core().claim(line.boris, line.dialog)
    });
}

#[test]
fn commands_on_an_unknown_dialog_are_refused_as_not_found() {
    let line = line();
    let nowhere = DialogId::new();
    line.refused(Error::DialogNotFound, || {
        line.bench.core().claim(line.anna, nowhere)
    });
    line.refused(Error::DialogNotFound, || {
        line.bench.core().restore(line.anna, nowhere)
    });
    assert_eq!(
        line.bench.core().dialog(line.anna, nowhere),
        Err(Error::DialogNotFound)
    );
    assert_eq!(
        line.bench
            .core()
            .send(line.anna, nowhere, "hi")
            .map(|m| m.id),
        Err(Error::DialogNotFound)
    );
}

#[test]
fn twenty_employees_claiming_at_once_leave_exactly_one_responsible() {
    let bench = Bench::connected();
    let employees: Vec<EmployeeId> = (0..20).map(|_| EmployeeId::new()).collect();
    bench.set_employees(employees.clone());
    let dialog = bench.person_writes(PERSON, 1042, "hello");

    let winners: Vec<EmployeeId> = std::thread::scope(|scope| {
        let handles: Vec<_> = employees
            .iter()
            .map(|employee| {
                let bench = &bench;
                let employee = *employee;
                scope.spawn(move || {
                    let core = vk_core::Core::new(&bench.store, &bench.vk, &bench.clock);
                    match core.claim(employee, dialog.id) {
                        Ok(_) => Some(employee),
                        Err(Error::AlreadyClaimed) => None,
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("no thread panics"))
            .collect()
    });

    assert_eq!(winners.len(), 1);
    let stored = bench.dialog_of(PERSON).expect("dialog");
    assert_eq!(stored.responsible, Some(winners[0]));
    assert_eq!(stored.participants, winners);
}

// ---- send --------------------------------------------------------------------------------

#[test]
fn send_by_the_responsible_employee_reaches_vk_on_behalf_of_the_community() {
    let line = line().claimed_by_anna();

    let message = line
        .bench
        .core()
        .send(line.anna, line.dialog, "Добрый день! Доставка — 350 ₽.")
        .expect("send");

    assert_eq!(message.author, Some(line.anna));
    let calls = line.bench.vk.calls_to("messages.send");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].param("peer_id"), PERSON.to_string());
    assert_eq!(calls[0].param("message"), "Добрый день! Доставка — 350 ₽.");
    assert_eq!(calls[0].param("access_token"), TOKEN);
    assert_eq!(calls[0].param("v"), "5.199");
    assert_eq!(
        calls[0].param("random_id"),
        message.random_id.expect("a random_id").to_string()
    );
    assert!(
        !calls[0]
            .params
            .values()
            .any(|v| v.contains(&line.anna.to_string())),
        "the operator is not named in VK"
    );
}

#[test]
fn send_by_an_invited_participant_is_allowed() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");

    let message = line
        .bench
        .core()
        .send(line.boris, line.dialog, "I can help too")
        .expect("a participant sends");
    assert_eq!(message.author, Some(line.boris));
}

#[test]
fn send_by_a_listed_non_participant_is_refused() {
    let line = line().claimed_by_anna();
    let before = line.bench.snapshot();

    let refused = line.bench.core().send(line.boris, line.dialog, "hi");

    assert_eq!(refused.map(|m| m.id), Err(Error::NotAParticipant));
    assert_eq!(line.bench.snapshot(), before);
    assert!(line.bench.vk.calls_to("messages.send").is_empty());
}

#[test]
fn send_to_an_unclaimed_dialog_is_refused() {
    let line = line();
    let refused = line.bench.core().send(line.anna, line.dialog, "hi");
    assert_eq!(refused.map(|m| m.id), Err(Error::NotAParticipant));
    assert!(line.bench.vk.calls_to("messages.send").is_empty());
}

#[test]
fn send_by_an_employee_taken_off_the_list_is_refused() {
    let line = line().claimed_by_anna();
    line.bench.dismiss(line.anna);
    let before = line.bench.snapshot();

    let refused = line.bench.core().send(line.anna, line.dialog, "hi");

    assert_eq!(
        refused.map(|m| m.id),
        Err(Error::EmployeeNotListed(line.anna.to_string()))
    );
    assert_eq!(line.bench.snapshot(), before);
}

#[test]
fn send_of_empty_or_too_long_text_is_refused_before_vk() {
    let line = line().claimed_by_anna();
    let before = line.bench.snapshot();

    for text in [String::new(), "   \n".to_owned(), "я".repeat(9001)] {
        let refused = line.bench.core().send(line.anna, line.dialog, &text);
        let error = refused.expect_err("refused");
        assert!(
            matches!(error, Error::InvalidField { field: "text", .. }),
            "{error}"
        );
    }
    assert_eq!(line.bench.snapshot(), before);
    assert!(line.bench.vk.calls_to("messages.send").is_empty());

    let longest = "я".repeat(9000);
    let sent = line
        .bench
        .core()
        .send(line.anna, line.dialog, &longest)
        .expect("9000 characters are VK's limit, not over it");
    assert_eq!(sent.text, longest);
    assert_eq!(line.bench.vk.delivered()[0].text, longest);
}

#[test]
fn send_to_a_closed_dialog_is_refused() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    let refused = line.bench.core().send(line.anna, line.dialog, "hi");
    assert_eq!(refused.map(|m| m.id), Err(Error::DialogNotOpen));
}

// ---- invite ------------------------------------------------------------------------------

#[test]
fn responsible_employee_invites_listed_colleagues_as_participants() {
    let line = line().claimed_by_anna();

    let dialog = line
        .bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris, line.vera])
        .expect("invite");

    assert_eq!(dialog.responsible, Some(line.anna));
    assert_eq!(dialog.participants, [line.anna, line.boris, line.vera]);
    assert_eq!(dialog.operators, [line.anna, line.boris, line.vera]);
    assert_eq!(
        line.bench.listed(line.boris, DialogStatus::Open),
        [line.dialog]
    );
    assert_eq!(
        line.bench.listed(line.vera, DialogStatus::Open),
        [line.dialog]
    );

    // History keeps the invites in the order given, one per colleague.
    let invites: Vec<_> = line
        .bench
        .history(line.anna, line.dialog)
        .into_iter()
        .filter(|e| e.kind == EventKind::Invited)
        .map(|e| (e.actor, e.subject))
        .collect();
    assert_eq!(
        invites,
        [
            (Some(line.anna), Some(line.boris)),
            (Some(line.anna), Some(line.vera))
        ]
    );
}

#[test]
fn inviting_a_participant_again_changes_nothing_in_the_list() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    let dialog = line
        .bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite again");
    assert_eq!(dialog.participants, [line.anna, line.boris]);
}

#[test]
fn invite_by_a_participant_who_is_not_responsible_is_refused() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    line.refused(Error::NotResponsible, || {
        line.bench
            .core()
            .invite(line.boris, line.dialog, &[line.vera])
    });
}

#[test]
fn invite_of_an_unlisted_employee_is_refused_and_invites_nobody() {
    let line = line().claimed_by_anna();
    let stranger = EmployeeId::new();
    // Boris is listed, the stranger is not: the whole command is refused.
    line.refused(Error::EmployeeNotListed(stranger.to_string()), || {
        line.bench
            .core()
            .invite(line.anna, line.dialog, &[line.boris, stranger])
    });
    assert_eq!(line.get().participants, [line.anna]);
}

#[test]
fn invite_of_nobody_is_refused_as_bad_input() {
    let line = line().claimed_by_anna();
    let before = line.bench.snapshot();
    let error = line
        .bench
        .core()
        .invite(line.anna, line.dialog, &[])
        .expect_err("refused");
    assert_eq!(error.kind(), vk_core::ErrorKind::BadInput);
    assert_eq!(line.bench.snapshot(), before);
}

// ---- leave -------------------------------------------------------------------------------

#[test]
fn participant_leaves_and_can_no_longer_send() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");

    let dialog = line
        .bench
        .core()
        .leave(line.boris, line.dialog)
        .expect("leave");

    assert_eq!(dialog.participants, [line.anna]);
    assert_eq!(dialog.responsible, Some(line.anna));
    assert_eq!(
        dialog.operators,
        [line.anna, line.boris],
        "past operators are kept"
    );
    assert!(line.bench.listed(line.boris, DialogStatus::Open).is_empty());
    assert_eq!(
        line.bench
            .core()
            .send(line.boris, line.dialog, "hi")
            .map(|m| m.id),
        Err(Error::NotAParticipant)
    );
}

#[test]
fn responsible_employee_leaving_returns_the_dialog_to_the_queue() {
    let line = line().claimed_by_anna();

    let dialog = line
        .bench
        .core()
        .leave(line.anna, line.dialog)
        .expect("leave");

    assert_eq!(dialog.responsible, None);
    assert!(dialog.participants.is_empty());
    assert_eq!(dialog.status, DialogStatus::Open);
    assert_eq!(
        line.bench.listed(line.boris, DialogStatus::Open),
        [line.dialog]
    );
    // Back in the queue, anyone listed may claim it.
    let claimed = line
        .bench
        .core()
        .claim(line.boris, line.dialog)
        .expect("claim from the queue");
    assert_eq!(claimed.responsible, Some(line.boris));
}

#[test]
fn leave_by_a_non_participant_is_refused() {
    let line = line().claimed_by_anna();
    line.refused(Error::NotAParticipant, || {
        line.bench.core().leave(line.boris, line.dialog)
    });
}

// ---- delegate ----------------------------------------------------------------------------

#[test]
fn delegate_hands_responsibility_and_keeps_the_former_as_participant() {
    let line = line().claimed_by_anna();

    let dialog = line
        .bench
        .core()
        .delegate(line.anna, line.dialog, line.boris)
        .expect("delegate");

    assert_eq!(dialog.responsible, Some(line.boris));
    assert_eq!(dialog.participants, [line.boris, line.anna]);
    assert_eq!(dialog.last_responsible, Some(line.boris));
    // The former may still write, but no longer command.
    line.bench
        .core()
        .send(line.anna, line.dialog, "handing you over to Boris")
        .expect("the former responsible still writes");
    line.refused(Error::NotResponsible, || {
        line.bench.core().finish(line.anna, line.dialog)
    });
    // Until leaving.
    let dialog = line
        .bench
        .core()
        .leave(line.anna, line.dialog)
        .expect("leave");
    assert_eq!(dialog.participants, [line.boris]);
    assert_eq!(dialog.responsible, Some(line.boris));
}

#[test]
fn delegate_by_a_non_responsible_is_refused() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    line.refused(Error::NotResponsible, || {
        line.bench
            .core()
            .delegate(line.boris, line.dialog, line.vera)
    });
}

#[test]
fn delegate_to_an_unlisted_employee_is_refused() {
    let line = line().claimed_by_anna();
    let stranger = EmployeeId::new();
    line.refused(Error::EmployeeNotListed(stranger.to_string()), || {
        line.bench.core().delegate(line.anna, line.dialog, stranger)
    });
}

#[test]
fn delegate_to_oneself_is_refused() {
    let line = line().claimed_by_anna();
    line.refused(Error::AlreadyResponsible, || {
        line.bench
            .core()
            .delegate(line.anna, line.dialog, line.anna)
    });
}

// ---- spam, finish, restore ---------------------------------------------------------------

#[test]
fn close_as_spam_and_finish_need_the_responsible_employee() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    for who in [line.boris, line.vera] {
        line.refused(Error::NotResponsible, || {
            line.bench.core().close_as_spam(who, line.dialog)
        });
        line.refused(Error::NotResponsible, || {
            line.bench.core().finish(who, line.dialog)
        });
    }
    let stranger = EmployeeId::new();
    line.refused(Error::EmployeeNotListed(stranger.to_string()), || {
        line.bench.core().finish(stranger, line.dialog)
    });
}

#[test]
fn close_as_spam_ends_the_session_and_lists_the_dialog_under_spam() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");

    let dialog = line
        .bench
        .core()
        .close_as_spam(line.anna, line.dialog)
        .expect("spam");

    assert_eq!(dialog.status, DialogStatus::Spam);
    assert_eq!(dialog.responsible, None);
    assert!(dialog.participants.is_empty());
    assert!(line.bench.listed(line.anna, DialogStatus::Open).is_empty());
    assert!(line.bench.listed(line.boris, DialogStatus::Open).is_empty());
    assert_eq!(
        line.bench.listed(line.vera, DialogStatus::Spam),
        [line.dialog]
    );
    assert!(
        line.bench
            .listed(line.vera, DialogStatus::Finished)
            .is_empty()
    );
}

#[test]
fn finish_lists_the_dialog_under_finished() {
    let line = line().claimed_by_anna();
    let dialog = line
        .bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    assert_eq!(dialog.status, DialogStatus::Finished);
    assert_eq!(
        line.bench.listed(line.boris, DialogStatus::Finished),
        [line.dialog]
    );
    assert!(line.bench.listed(line.anna, DialogStatus::Open).is_empty());
    line.refused(Error::DialogNotOpen, || {
        line.bench.core().finish(line.anna, line.dialog)
    });
}

#[test]
fn restore_returns_the_dialog_to_its_last_responsible_employee() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .close_as_spam(line.anna, line.dialog)
        .expect("spam");

    // Any listed employee may restore.
    let dialog = line
        .bench
        .core()
        .restore(line.vera, line.dialog)
        .expect("restore");

    assert_eq!(dialog.status, DialogStatus::Open);
    assert_eq!(dialog.responsible, Some(line.anna));
    assert_eq!(dialog.participants, [line.anna]);
    assert_eq!(
        line.bench.listed(line.anna, DialogStatus::Open),
        [line.dialog]
    );
    assert!(line.bench.listed(line.anna, DialogStatus::Spam).is_empty());
}

#[test]
fn restore_after_delegation_returns_to_the_delegate() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .delegate(line.anna, line.dialog, line.boris)
        .expect("delegate");
    line.bench
        .core()
        .finish(line.boris, line.dialog)
        .expect("finish");
    let dialog = line
        .bench
        .core()
        .restore(line.anna, line.dialog)
        .expect("restore");
    assert_eq!(dialog.responsible, Some(line.boris));
    assert_eq!(dialog.participants, [line.boris]);
}

#[test]
fn restore_when_the_last_responsible_is_no_longer_listed_returns_to_the_queue() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    line.bench.dismiss(line.anna);

    let dialog = line
        .bench
        .core()
        .restore(line.boris, line.dialog)
        .expect("restore");

    assert_eq!(dialog.status, DialogStatus::Open);
    assert_eq!(dialog.responsible, None);
    assert!(dialog.participants.is_empty());
    assert_eq!(
        line.bench.listed(line.vera, DialogStatus::Open),
        [line.dialog]
    );
}

#[test]
fn restore_of_a_never_claimed_dialog_is_refused_while_open() {
    let line = line();
    line.refused(Error::DialogNotClosed, || {
        line.bench.core().restore(line.anna, line.dialog)
    });
}

#[test]
fn restore_by_an_unlisted_employee_is_refused() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    let stranger = EmployeeId::new();
    line.refused(Error::EmployeeNotListed(stranger.to_string()), || {
        line.bench.core().restore(stranger, line.dialog)
    });
}

#[test]
fn finished_dialog_is_restored_from_its_leads_communication_block() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .finish(line.anna, line.dialog)
        .expect("finish");
    let lead = line.bench.lead_of(line.boris, &line.get());
    let (_, communication) = line.bench.core().lead(line.boris, lead.id).expect("lead");
    assert_eq!(communication.status, DialogStatus::Finished);

    let dialog = line
        .bench
        .core()
        .restore_from_lead(line.boris, lead.id)
        .expect("restore from the lead");

    assert_eq!(dialog.id, line.dialog);
    assert_eq!(dialog.status, DialogStatus::Open);
    assert_eq!(dialog.responsible, Some(line.anna));
    let (_, communication) = line.bench.core().lead(line.boris, lead.id).expect("lead");
    assert_eq!(communication.status, DialogStatus::Open);
}

// ---- reading -----------------------------------------------------------------------------

#[test]
fn every_listed_employee_reads_every_dialog_and_outsiders_read_nothing() {
    let line = line().claimed_by_anna();
    for reader in [line.anna, line.boris, line.vera] {
        assert_eq!(
            line.bench.core().dialog(reader, line.dialog).map(|d| d.id),
            Ok(line.dialog)
        );
        assert_eq!(line.bench.messages(reader, line.dialog).len(), 1);
        assert!(!line.bench.history(reader, line.dialog).is_empty());
    }
    let stranger = EmployeeId::new();
    let not_listed = Some(Error::EmployeeNotListed(stranger.to_string()));
    let core = line.bench.core();
    assert_eq!(core.dialog(stranger, line.dialog).err(), not_listed);
    assert_eq!(
        core.messages(stranger, line.dialog, None, 10).err(),
        not_listed
    );
    assert_eq!(
        core.history(stranger, line.dialog, None, 10).err(),
        not_listed
    );
    assert_eq!(
        core.dialogs(stranger, DialogStatus::Open, None, 10).err(),
        not_listed
    );
}

#[test]
fn dialog_carries_its_leads_id() {
    let line = line();
    let dialog = line.get();
    let (lead, _) = line
        .bench
        .core()
        .lead(line.anna, dialog.lead_id)
        .expect("the dialog's lead");
    assert_eq!(lead.dialog_id, dialog.id);
}

#[test]
fn history_lists_every_step_in_order_with_actors_and_all_operators() {
    let line = line();
    let (bench, id) = (&line.bench, line.dialog);
    let (anna, boris, vera) = (line.anna, line.boris, line.vera);
    let core = bench.core();
    let step = || bench.clock.tick();

    core.claim(anna, id).expect("claim");
    step();
    core.send(anna, id, "Здравствуйте!").expect("send");
    step();
    core.invite(anna, id, &[boris, vera]).expect("invite");
    step();
    core.leave(vera, id).expect("vera leaves");
    step();
    core.delegate(anna, id, boris).expect("delegate");
    step();
    core.finish(boris, id).expect("finish");
    step();
    core.restore(anna, id).expect("restore");
    step();
    core.close_as_spam(boris, id).expect("spam");
    step();
    core.restore(vera, id).expect("restore from spam");

    let (page, operators) = core.history(anna, id, None, 200).expect("history");
    let steps: Vec<(EventKind, Option<EmployeeId>, Option<EmployeeId>)> = page
        .items
        .iter()
        .map(|e| (e.kind, e.actor, e.subject))
        .collect();
    assert_eq!(
        steps,
        [
            (EventKind::MessageIn, None, None),
            (EventKind::Claimed, Some(anna), None),
            (EventKind::MessageOut, Some(anna), None),
            (EventKind::Invited, Some(anna), Some(boris)),
            (EventKind::Invited, Some(anna), Some(vera)),
            (EventKind::Left, Some(vera), None),
            (EventKind::Delegated, Some(anna), Some(boris)),
            (EventKind::Finished, Some(boris), None),
            (EventKind::Restored, Some(anna), Some(boris)),
            (EventKind::ClosedAsSpam, Some(boris), None),
            (EventKind::Restored, Some(vera), Some(boris)),
        ]
    );
    // Times never go backwards and the message entries point at the messages.
    assert!(page.items.windows(2).all(|w| w[0].at <= w[1].at));
    let messages = bench.messages(anna, id);
    assert_eq!(page.items[0].message_id, Some(messages[0].id));
    assert_eq!(page.items[2].message_id, Some(messages[1].id));
    // Current and past operators, in order of arrival.
    assert_eq!(operators, [anna, boris, vera]);
    assert_eq!(page.next, None);
}

#[test]
fn history_and_messages_page_with_a_cursor() {
    let bench = Bench::connected();
    let reader = bench.hire();
    let dialog = bench.person_writes(PERSON, 1, "m1");
    for n in 2..=7 {
        bench.clock.tick();
        bench.person_writes(PERSON, n, &format!("m{n}"));
    }

    let mut texts = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = bench
            .core()
            .messages(reader, dialog.id, cursor.as_deref(), 3)
            .expect("a page");
        assert!(page.items.len() <= 3);
        texts.extend(page.items.into_iter().map(|m| m.text));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(texts, ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);

    let (first, _) = bench
        .core()
        .history(reader, dialog.id, None, 4)
        .expect("history");
    let next = first.next.expect("more history");
    let (second, _) = bench
        .core()
        .history(reader, dialog.id, Some(&next), 4)
        .expect("history");
    assert_eq!(first.items.len() + second.items.len(), 7);
    assert_eq!(second.next, None);
}

// ---- open lines --------------------------------------------------------------------------

#[test]
fn open_lines_show_the_queue_and_my_dialogs_but_not_my_colleagues() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let boris = bench.hire();
    let mut dialogs = Vec::new();
    for peer in 1..=6 {
        bench.vk.person(peer, "Person", &peer.to_string());
        dialogs.push(bench.person_writes(peer, peer * 10, "hello").id);
        bench.clock.tick();
    }
    let core = bench.core();
    core.claim(anna, dialogs[0]).expect("claim");
    core.claim(anna, dialogs[1]).expect("claim");
    core.claim(boris, dialogs[2]).expect("claim");
    core.claim(boris, dialogs[3]).expect("claim");
    core.invite(boris, dialogs[3], &[anna]).expect("invite");
    core.claim(anna, dialogs[4]).expect("claim");
    core.close_as_spam(anna, dialogs[4]).expect("spam");
    core.claim(boris, dialogs[5]).expect("claim");
    core.finish(boris, dialogs[5]).expect("finish");

    // Newest first: dialogs[3] (invited), [1], [0] (mine); none in the queue any more.
    assert_eq!(
        bench.listed(anna, DialogStatus::Open),
        [dialogs[3], dialogs[1], dialogs[0]]
    );
    assert_eq!(
        bench.listed(boris, DialogStatus::Open),
        [dialogs[3], dialogs[2]]
    );
    assert_eq!(bench.listed(boris, DialogStatus::Spam), [dialogs[4]]);
    assert_eq!(bench.listed(anna, DialogStatus::Finished), [dialogs[5]]);

    // A new person waits in everyone's queue, newest on top.
    bench.vk.person(7, "Seven", "Person");
    let newest = bench.person_writes(7, 70, "hi").id;
    assert_eq!(
        bench.listed(anna, DialogStatus::Open),
        [newest, dialogs[3], dialogs[1], dialogs[0]]
    );
    assert_eq!(
        bench.listed(boris, DialogStatus::Open),
        [newest, dialogs[3], dialogs[2]]
    );
}

#[test]
fn a_queued_dialog_with_a_remaining_participant_is_listed_once() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    line.bench
        .core()
        .leave(line.anna, line.dialog)
        .expect("leave");
    // In the queue and in Boris's dialogs: one entry.
    assert_eq!(
        line.bench.listed(line.boris, DialogStatus::Open),
        [line.dialog]
    );
}

#[test]
fn open_lines_page_with_next_until_every_dialog_was_seen_once() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let mut expected = Vec::new();
    for peer in 1..=11 {
        bench.vk.person(peer, "Person", &peer.to_string());
        expected.push(bench.person_writes(peer, peer, "hello").id);
        bench.clock.tick();
    }
    // Half of them are Anna's, half in the queue: both sources are paged together.
    for id in expected.iter().step_by(2) {
        bench.core().claim(anna, *id).expect("claim");
    }
    expected.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = bench
            .core()
            .dialogs(anna, DialogStatus::Open, cursor.as_deref(), 4)
            .expect("a page");
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|d| d.id));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // A page that ends exactly at the last dialog has no `next`.
    let all = bench
        .core()
        .dialogs(anna, DialogStatus::Open, None, 11)
        .expect("one page");
    assert_eq!(all.items.len(), 11);
    assert_eq!(all.next, None);
}

#[test]
fn spam_and_finished_lists_page_too() {
    let bench = Bench::connected();
    let anna = bench.hire();
    let mut spam = Vec::new();
    for peer in 1..=5 {
        bench.vk.person(peer, "Person", &peer.to_string());
        let id = bench.person_writes(peer, peer, "buy now").id;
        bench.core().claim(anna, id).expect("claim");
        bench.core().close_as_spam(anna, id).expect("spam");
        spam.push(id);
        bench.clock.tick();
    }
    spam.reverse();
    let first = bench
        .core()
        .dialogs(anna, DialogStatus::Spam, None, 2)
        .expect("page");
    let second = bench
        .core()
        .dialogs(anna, DialogStatus::Spam, first.next.as_deref(), 2)
        .expect("page");
    let third = bench
        .core()
        .dialogs(anna, DialogStatus::Spam, second.next.as_deref(), 2)
        .expect("page");
    let seen: Vec<DialogId> = [first.items, second.items, third.items]
        .concat()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(seen, spam);
    assert_eq!(third.next, None);
    assert!(bench.listed(anna, DialogStatus::Finished).is_empty());
}

// ---- employees taken off the list ----------------------------------------------------------

#[test]
fn an_employee_taken_off_the_list_leaves_and_their_dialog_returns_to_the_queue() {
    let line = line().claimed_by_anna();
    line.bench
        .core()
        .invite(line.anna, line.dialog, &[line.boris])
        .expect("invite");
    line.bench.set_employees(vec![line.boris, line.vera]);

    let dialog = line
        .bench
        .core()
        .dialog(line.vera, line.dialog)
        .expect("read");
    assert_eq!(dialog.responsible, None);
    assert_eq!(dialog.participants, [line.boris]);
    let queue = line
        .bench
        .core()
        .dialogs(line.vera, DialogStatus::Open, None, 10)
        .expect("list");
    assert_eq!(
        queue.items.len(),
        1,
        "back in the queue, visible to everyone listed"
    );
    let claimed = line
        .bench
        .core()
        .claim(line.vera, line.dialog)
        .expect("claim");
    assert_eq!(claimed.responsible, Some(line.vera));
    let (history, _) = line
        .bench
        .core()
        .history(line.vera, line.dialog, None, 50)
        .expect("history");
    let left = history
        .items
        .iter()
        .find(|e| e.kind == EventKind::Left)
        .expect("an entry");
    assert_eq!(left.actor, Some(line.anna));
}
