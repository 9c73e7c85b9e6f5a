# Every command a developer or CI needs. `make run` serves the product, `make test` runs
# every check and test. Both install what they need (the wasm32-wasip2 target) first.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
ARGS ?=

.PHONY: run test setup browser-setup postgres-setup plugin faulty-plugin spin-plugin lint unit bench load

setup:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

# The browser test's tools: Debian's Chromium (headless; no browser is downloaded) and
# playwright-core from the committed lock file.
browser-setup:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends chromium; }
	cd tests/browser && npm ci --no-audit --no-fund

# The scale-out tests' database: Debian's PostgreSQL server programs (the tests run their own
# throwaway server; nothing is started here).
postgres-setup:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends postgresql; }

# The plugin component: target/wasm32-wasip2/release/vk_plugin.wasm
plugin: setup
	$(CARGO) build --release --target $(WASM_TARGET) -p vk-plugin

# Test-only: both components built with fault injection (traps, loops, memory hogs on demand),
# in target/faulty/.
faulty-plugin: setup
	$(CARGO) build --release --target $(WASM_TARGET) -p vk-plugin --features fault-injection --target-dir target/faulty
	$(CARGO) build --release --target $(WASM_TARGET) -p vk-spin --features fault-injection --target-dir target/faulty

# The Spin component: target/wasm32-wasip2/release/vk_spin.wasm (spin.toml's source).
spin-plugin: setup
	$(CARGO) build --release --target $(WASM_TARGET) -p vk-spin

run: plugin
	$(CARGO) run -p vk-host -- serve $(ARGS)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude vk-plugin --exclude vk-spin --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p vk-plugin --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p vk-spin --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all -- --check
	$(CARGO) +nightly clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

# The host's tests resolve features like `make run` (vk-spin's native dependencies stay out),
# so tests, `run` and `bench` share one build of wasmtime (vk-spin holds no tests of its own:
# its store's logic is vk_core::sql, tested natively).
# Then the schema-driven test against the host those tests built, and a short run of each
# fuzz target (the long run is `make fuzz`).
test: plugin faulty-plugin spin-plugin browser-setup postgres-setup lint fuzz-setup
	$(CARGO) test --workspace --exclude vk-plugin --exclude vk-spin
	$(MAKE) schema-test
	$(MAKE) fuzz-smoke

bench: plugin spin-plugin
	$(CARGO) run -p vk-host -- bench $(ARGS)

# The host over real HTTP: `serve` (durable, then --memory) and `serve-spin` as child
# processes, driven with message_new callbacks at a fixed rate and at saturation.
load: plugin spin-plugin
	$(CARGO) run -p vk-host -- load $(ARGS)

# Coverage-guided fuzzing (docs/reliability.md): the libFuzzer targets of fuzz/, a workspace
# of its own, built with the machine's nightly toolchain. A run reads the committed seeds
# (fuzz/corpus/<target>/) and keeps what it finds in fuzz/target/corpus/<target>/, out of git;
# a crashing input is written to fuzz/artifacts/<target>/. One target after another, one
# process, at low priority. `fuzz-smoke` is the short run for CI.
.PHONY: fuzz-setup fuzz fuzz-smoke
FUZZ_TARGETS := callback api money settings
FUZZ_SECONDS ?= 900

fuzz-setup:
	@rustup toolchain list | grep -q '^nightly' || { echo 'fuzzing needs the nightly toolchain (see rustup toolchain list)' >&2; exit 1; }
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

fuzz: fuzz-setup
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$target && \
		( cd fuzz && nice -n 10 cargo +nightly fuzz run --sanitizer none $$target \
			target/corpus/$$target corpus/$$target -- -dict=dict/$$target.dict \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 ) || exit 1; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=15

# The schema-driven test (docs/reliability.md): schemathesis, pinned in a venv under target/,
# drives `vk-host serve` from docs/openapi.json with an employee's and the admin's token.
# Builds nothing: it runs the host and plugin `make test` (or `make plugin` and
# `cargo build -p vk-host`) built.
.PHONY: schema-test
schema-test:
	tests/schema/run
