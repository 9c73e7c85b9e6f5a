//! `vk-host`: the reference host of the VK community plugin, and its test harness.
//!
//! It loads the plugin component with wasmtime ([`plugin`]), provides the plugin's imports
//! ([`storage`], [`http`]), and serves VK's callbacks and the operator API over HTTP
//! ([`api`]) by handing each request to the plugin's `api` export, and runs the Spin
//! component of the same product ([`spin`]).

pub mod api;
pub mod bench;
pub mod database;
pub mod http;
pub mod imports;
pub mod load;
pub mod pg;
pub mod plugin;
pub mod server;
pub mod spin;
pub mod storage;
