//! The `ferry` service: configuration, wiring, REST API, demo and the emulator command.
//! Business logic lives in the `ferry-*` library crates; this crate only connects them.

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod api_client;
pub mod app;
pub mod bench;
pub mod config;
pub mod console;
pub mod demo;
pub mod http_server;
mod sim_faults;
pub mod simulate;
pub mod tree;
