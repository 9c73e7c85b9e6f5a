//! Delivery of operators' messages (SPEC §2 "Send"): `pending → sent | failed`, VK's errors
//! kept on the message, retries with backoff that never deliver twice.

mod common;

use chrono::Duration;
use common::*;
use vk_core::delivery::{MAX_ATTEMPTS, random_id};
use vk_core::dialog::{Delivery, Message};
use vk_core::ids::{DialogId, EmployeeId};

/// A connected bench with a dialog claimed by an operator.
fn claimed() -> (Bench, EmployeeId, DialogId) {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "hello").id;
    bench.clock.tick();
    bench.core().claim(operator, dialog).expect("claim");
    bench.clock.tick();
    (bench, operator, dialog)
}

/// The stored state of a message.
fn stored(bench: &Bench, reader: EmployeeId, dialog: DialogId, message: &Message) -> Message {
    bench
        .messages(reader, dialog)
        .into_iter()
        .find(|m| m.id == message.id)
        .expect("the message is stored")
}

#[test]
fn send_goes_from_pending_to_sent_with_vks_message_id() {
    let (bench, operator, dialog) = claimed();

    let message = bench
        .core()
        .send(operator, dialog, "Добрый день!")
        .expect("send");

    let delivered = bench.vk.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(message.delivery, Some(Delivery::Sent));
    assert_eq!(message.vk_id, Some(delivered[0].vk_id));
    assert_eq!(message.error, None);
    assert_eq!(stored(&bench, operator, dialog, &message), message);
    assert_eq!(bench.count("outbox/"), 0, "nothing waits any more");
}

#[test]
fn random_id_is_a_nonzero_int32_derived_from_the_message_id() {
    let (bench, operator, dialog) = claimed();
    let message = bench.core().send(operator, dialog, "hi").expect("send");
    let random = message.random_id.expect("a random_id");
    assert!(random > 0);
    assert_eq!(random, random_id(message.id));
    assert_eq!(bench.vk.delivered()[0].random_id, random);
}

#[test]
fn each_message_gets_its_own_random_id_so_vk_delivers_all_of_them() {
    let (bench, operator, dialog) = claimed();
    for n in 0..5 {
        bench
            .core()
            .send(operator, dialog, &format!("part {n}"))
            .expect("send");
    }
    let delivered = bench.vk.delivered();
    assert_eq!(delivered.len(), 5);
    let mut randoms: Vec<i32> = delivered.iter().map(|d| d.random_id).collect();
    randoms.sort_unstable();
    randoms.dedup();
    assert_eq!(randoms.len(), 5);
}

#[test]
fn permanent_vk_errors_fail_at_once_with_the_code_kept_and_no_retry() {
    for code in [5, 7, 15, 901, 902, 914] {
        let (bench, operator, dialog) = claimed();
        bench.vk.fail_next("messages.send", Failure::Vk(code));

        let message = bench
            .core()
            .send(operator, dialog, "hello")
            .expect("the message is stored even though VK refused it");

        assert_eq!(message.delivery, Some(Delivery::Failed), "code {code}");
        let error = message.error.clone().expect("the error is kept");
        assert_eq!(error.code, code);
        assert!(!error.message.is_empty());
        assert_eq!(stored(&bench, operator, dialog, &message), message);

        bench.clock.advance(Duration::hours(1));
        for _ in 0..3 {
            bench.core().flush().expect("flush");
        }
        assert_eq!(
            bench.vk.calls_to("messages.send").len(),
            1,
            "code {code} is not retried"
        );
        assert_eq!(
            stored(&bench, operator, dialog, &message).delivery,
            Some(Delivery::Failed)
        );
    }
}

#[test]
fn failed_message_explains_vks_refusal_for_the_operator() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_next("messages.send", Failure::Vk(901));
    let message = bench.core().send(operator, dialog, "hello").expect("send");
    let error = message.error.expect("kept");
    assert_eq!(error.code, 901);
    assert!(
        error.message.contains("not allowed messages"),
        "{}",
        error.message
    );
}

#[test]
fn transient_failures_stay_pending_and_flush_retries_after_the_backoff() {
    for failure in [
        Failure::Timeout,
        Failure::Status(500),
        Failure::Status(503),
        Failure::Vk(6),
        Failure::Vk(9),
        Failure::Vk(10),
    ] {
        let (bench, operator, dialog) = claimed();
        bench.vk.fail_next("messages.send", failure.clone());

        let message = bench.core().send(operator, dialog, "hello").expect("send");
        assert_eq!(message.delivery, Some(Delivery::Pending), "{failure:?}");
        let kept = message
            .error
            .clone()
            .expect("VK's answer is kept while pending");
        if let Failure::Vk(code) = failure {
            assert_eq!(kept.code, code);
        }
        assert!(bench.vk.delivered().is_empty());

        // Not yet due: flush leaves it alone.
        let report = bench.core().flush().expect("flush");
        assert_eq!((report.sent, report.failed), (0, 0));
        assert_eq!(bench.vk.calls_to("messages.send").len(), 1, "{failure:?}");

        bench.clock.advance(Duration::seconds(1));
        let report = bench.core().flush().expect("flush");
        assert_eq!(report.sent, 1, "{failure:?}");

        let after = stored(&bench, operator, dialog, &message);
        assert_eq!(after.delivery, Some(Delivery::Sent));
        let delivered = bench.vk.delivered();
        assert_eq!(delivered.len(), 1);
        assert_eq!(after.vk_id, Some(delivered[0].vk_id));
        let calls = bench.vk.calls_to("messages.send");
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[0].param("random_id"),
            calls[1].param("random_id"),
            "a retry carries the same random_id"
        );
    }
}

#[test]
fn backoff_grows_between_attempts() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_times("messages.send", Failure::Vk(10), 3);
    let message = bench.core().send(operator, dialog, "hello").expect("send");
    let attempts = || bench.vk.calls_to("messages.send").len();
    assert_eq!(attempts(), 1);

    // 1 s after the first failure.
    bench.clock.advance(Duration::seconds(1));
    bench.core().flush().expect("flush");
    assert_eq!(attempts(), 2);
    // 2 s after the second: at 1 s it is not due yet.
    bench.clock.advance(Duration::seconds(1));
    bench.core().flush().expect("flush");
    assert_eq!(attempts(), 2);
    bench.clock.advance(Duration::seconds(1));
    bench.core().flush().expect("flush");
    assert_eq!(attempts(), 3);
    // 4 s after the third.
    bench.clock.advance(Duration::seconds(3));
    bench.core().flush().expect("flush");
    assert_eq!(attempts(), 3);
    bench.clock.advance(Duration::seconds(1));
    bench.core().flush().expect("flush");
    assert_eq!(attempts(), 4);

    assert_eq!(
        stored(&bench, operator, dialog, &message).delivery,
        Some(Delivery::Sent)
    );
}

#[test]
fn message_that_keeps_failing_transiently_is_given_up_as_failed() {
    let (bench, operator, dialog) = claimed();
    bench
        .vk
        .fail_times("messages.send", Failure::Vk(10), MAX_ATTEMPTS as usize + 5);
    let message = bench.core().send(operator, dialog, "hello").expect("send");

    for _ in 0..MAX_ATTEMPTS + 3 {
        bench.clock.advance(Duration::minutes(10));
        bench.core().flush().expect("flush");
    }

    let after = stored(&bench, operator, dialog, &message);
    assert_eq!(after.delivery, Some(Delivery::Failed));
    assert_eq!(after.error.expect("kept").code, 10);
    assert_eq!(
        bench.vk.calls_to("messages.send").len(),
        MAX_ATTEMPTS as usize
    );
    assert_eq!(bench.count("outbox/"), 0);
}

#[test]
fn flush_run_many_times_never_sends_twice() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_next("messages.send", Failure::Timeout);
    bench.core().send(operator, dialog, "hello").expect("send");

    for _ in 0..10 {
        bench.clock.advance(Duration::minutes(1));
        bench.core().flush().expect("flush");
    }

    assert_eq!(bench.vk.calls_to("messages.send").len(), 2);
    assert_eq!(bench.vk.delivered().len(), 1);
}

#[test]
fn retry_after_a_lost_answer_is_dropped_by_vk_and_the_message_is_sent_once() {
    let (bench, operator, dialog) = claimed();
    // VK delivers, but its answer never arrives.
    bench
        .vk
        .fail_next("messages.send", Failure::TimeoutAfterDelivery);
    let message = bench.core().send(operator, dialog, "hello").expect("send");
    assert_eq!(message.delivery, Some(Delivery::Pending));
    assert_eq!(bench.vk.delivered().len(), 1);

    bench.clock.advance(Duration::seconds(5));
    bench.core().flush().expect("flush");

    let after = stored(&bench, operator, dialog, &message);
    assert_eq!(after.delivery, Some(Delivery::Sent));
    assert_eq!(bench.vk.calls_to("messages.send").len(), 2);
    let delivered = bench.vk.delivered();
    assert_eq!(delivered.len(), 1, "the person got the message once");
    assert_eq!(after.vk_id, Some(delivered[0].vk_id));
}

#[test]
fn concurrent_flushes_attempt_a_due_message_once() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_next("messages.send", Failure::Status(502));
    bench.core().send(operator, dialog, "hello").expect("send");
    bench.clock.advance(Duration::seconds(30));

    std::thread::scope(|scope| {
        for _ in 0..10 {
            let bench = &bench;
            scope.spawn(move || {
                let core = vk_core::Core::new(&bench.store, &bench.vk, &bench.clock);
                core.flush().expect("flush");
            });
        }
    });

    assert_eq!(bench.vk.calls_to("messages.send").len(), 2);
    assert_eq!(bench.vk.delivered().len(), 1);
}

#[test]
fn flush_reports_what_it_did() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_next("messages.send", Failure::Vk(6));
    bench.core().send(operator, dialog, "one").expect("send");
    bench.vk.fail_next("messages.send", Failure::Vk(6));
    bench.core().send(operator, dialog, "two").expect("send");
    bench.clock.advance(Duration::seconds(2));
    bench.vk.fail_next("messages.send", Failure::Vk(7));

    let report = bench.core().flush().expect("flush");

    assert_eq!((report.sent, report.failed, report.pending), (1, 1, 0));
    assert_eq!(bench.core().flush().expect("flush"), Default::default());
}

#[test]
fn send_without_an_access_key_fails_with_the_key_error() {
    let (bench, operator, dialog) = claimed();
    bench.change_settings(vk_core::settings::SettingsUpdate {
        access_token: Some(String::new()),
        ..Default::default()
    });

    let message = bench.core().send(operator, dialog, "hello").expect("send");

    assert_eq!(message.delivery, Some(Delivery::Failed));
    let error = message.error.expect("kept");
    assert_eq!(error.code, 0, "VK was never called, so there is no VK code");
    assert!(error.message.contains("access key"), "{}", error.message);
    assert!(bench.vk.calls_to("messages.send").is_empty());
}

#[test]
fn vk_answering_902_after_the_plugin_thought_sending_was_allowed_fails_the_message() {
    let (bench, operator, dialog) = claimed();
    bench.vk.fail_next("messages.send", Failure::Vk(902));
    let message = bench.core().send(operator, dialog, "hello").expect("send");
    assert_eq!(message.delivery, Some(Delivery::Failed));
    assert_eq!(message.error.expect("kept").code, 902);
}

#[test]
fn send_is_stored_with_author_and_recorded_in_history() {
    let (bench, operator, dialog) = claimed();
    let message = bench.core().send(operator, dialog, "hello").expect("send");
    assert_eq!(message.author, Some(operator));
    assert_eq!(message.dialog_id, dialog);
    assert_eq!(message.text, "hello");
    let history = bench.history(operator, dialog);
    let last = history.last().expect("an entry");
    assert_eq!(last.kind, vk_core::dialog::EventKind::MessageOut);
    assert_eq!(last.actor, Some(operator));
    assert_eq!(last.message_id, Some(message.id));
}

/// VK as it really behaves around `messages.send`: the echo (`message_reply`) of a message
/// reaches the callback endpoint while the `messages.send` call is still in flight.
struct EchoingVk<'a> {
    bench: &'a Bench,
}

impl vk_core::ports::Http for EchoingVk<'_> {
    fn send(
        &self,
        request: vk_core::ports::HttpRequest,
    ) -> Result<vk_core::ports::HttpResponse, vk_core::ports::HttpError> {
        let sending = request.url.ends_with("/messages.send");
        let answer = self.bench.vk.send(request);
        if sending {
            let delivered = self.bench.vk.delivered();
            let last = delivered.last().expect("VK delivered the message");
            let echo = Event::echo(last);
            let core = vk_core::Core::new(&self.bench.store, &self.bench.vk, &self.bench.clock);
            assert_eq!(
                core.handle_callback(&echo.body()),
                Ok(vk_core::intake::CallbackReply::Ok)
            );
        }
        answer
    }
}

#[test]
fn echo_arriving_while_messages_send_is_in_flight_is_not_stored_twice() {
    let (bench, operator, dialog) = claimed();
    let vk = EchoingVk { bench: &bench };
    let core = vk_core::Core::new(&bench.store, &vk, &bench.clock);

    let message = core.send(operator, dialog, "hello").expect("send");

    assert_eq!(message.delivery, Some(Delivery::Sent));
    let delivered = bench.vk.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(message.vk_id, Some(delivered[0].vk_id));
    let messages = bench.messages(operator, dialog);
    assert_eq!(messages.len(), 2, "hello + our message, no echo copy");
    assert_eq!(bench.count("outbox/"), 0);
}

/// An HTTP port whose process dies (panics) right after VK accepted a message.
struct DiesAfterSending<'a> {
    vk: &'a FakeVk,
}

impl vk_core::ports::Http for DiesAfterSending<'_> {
    fn send(
        &self,
        request: vk_core::ports::HttpRequest,
    ) -> Result<vk_core::ports::HttpResponse, vk_core::ports::HttpError> {
        let _ = self.vk.send(request);
        panic!("the process died before VK's answer was recorded");
    }
}

#[test]
fn attempt_that_died_half_way_is_retried_after_its_lease_and_delivered_once() {
    let (bench, operator, dialog) = claimed();
    let dying = DiesAfterSending { vk: &bench.vk };
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vk_core::Core::new(&bench.store, &dying, &bench.clock).send(operator, dialog, "hello")
    }));
    let death = died.expect_err("the process died");
    assert_eq!(
        death.downcast_ref::<&str>(),
        Some(&"the process died before VK's answer was recorded")
    );
    assert_eq!(bench.vk.delivered().len(), 1);
    let pending = bench.messages(operator, dialog);
    assert_eq!(pending[1].delivery, Some(Delivery::Pending));

    // While the dead attempt's lease holds, nobody else tries.
    bench.clock.advance(Duration::seconds(5));
    bench.core().flush().expect("flush");
    assert_eq!(bench.vk.calls_to("messages.send").len(), 1);

    bench.clock.advance(Duration::seconds(30));
    let report = bench.core().flush().expect("flush");

    assert_eq!(report.sent, 1);
    let calls = bench.vk.calls_to("messages.send");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].param("random_id"), calls[1].param("random_id"));
    assert_eq!(bench.vk.delivered().len(), 1, "VK dropped the repeat");
    let after = bench.messages(operator, dialog);
    assert_eq!(after[1].delivery, Some(Delivery::Sent));
    assert_eq!(after[1].vk_id, Some(bench.vk.delivered()[0].vk_id));
}
