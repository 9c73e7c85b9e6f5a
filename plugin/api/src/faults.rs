//! Test-only misbehaviour (feature `fault-injection`), so the isolation of a bad guest can be
//! proven end to end in both hosts: the plugin's (`vk-host serve`) and the Spin component's
//! (`vk-host serve-spin`). Never compiled into a release component.

/// `fault:trap` panics (a trap), `fault:loop` never returns, `fault:memory` allocates
/// without end. Any other body passes.
pub fn inject(body: &[u8]) {
    match body {
        b"fault:trap" => panic!("fault injected: trap"),
        b"fault:loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        b"fault:memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => {}
    }
}
