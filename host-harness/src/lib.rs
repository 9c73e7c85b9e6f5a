//! `vk-host`: the reference host of the VK community plugin, and its test harness.
//!
//! It loads the plugin component with wasmtime ([`plugin`]), provides the plugin's imports
//! ([`storage`], [`http`]), and serves VK's callbacks and the operator API over HTTP
//! ([`api`]). Employees and their tokens ([`employees`]) belong to the host: it decides who
//! is calling, the plugin decides what they may do.

pub mod api;
pub mod bench;
pub mod employees;
pub mod http;
pub mod plugin;
pub mod spin;
pub mod storage;
