//! VK's callback intake: bytes → `Core::handle_callback` on a store connected to the
//! community. An input is up to eight callback bodies separated by NUL bytes (never part of
//! JSON text), handled in order on one store, so an edit can follow the message it edits.
//!
//! After each body: a refused body changed nothing; a body the product acted on (or answered
//! with the confirmation string) carried the community's id and secret; the confirmation
//! answer is the configured string; the same body again changes nothing and gets the same
//! answer (at most once); and the store is consistent (`Bench::check_consistent`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vk_core::intake::CallbackReply;
use vk_fuzz::{Bench, CONFIRMATION, from_community};

const MAX_EVENTS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let bench = Bench::connected();
    for body in data.split(|byte| *byte == 0).take(MAX_EVENTS) {
        let before = bench.snapshot();
        let reply = bench.core().handle_callback(body);
        let after = bench.snapshot();
        match &reply {
            Err(error) => assert!(before == after, "refused ({error:?}) but stored"),
            Ok(reply) => {
                assert!(
                    from_community(body),
                    "acted on a foreign callback: {reply:?}"
                );
                if let CallbackReply::Confirmation(text) = reply {
                    assert_eq!(text, CONFIRMATION);
                }
            }
        }
        let again = bench.core().handle_callback(body);
        assert_eq!(again, reply, "a repeat is answered differently");
        assert!(bench.snapshot() == after, "a repeat changed the store");
        bench.check_consistent();
    }
});
