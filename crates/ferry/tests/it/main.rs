//! Ferry's integration tests: one binary, real servers on 127.0.0.1 port 0 in temp dirs.

mod api_e2e;
mod api_fuzz;
mod api_routes;
mod backup;
mod bench_quick;
mod browser;
mod cli;
mod client_emulator;
mod connect_flow;
mod console;
mod emulator_conformance;
mod emulator_restart;
mod folder_maps;
mod http_edge;
mod kill_restart;
mod no_loss;
mod oauth_refresh;
mod offload;
mod openapi;
mod resume;
mod shared_links;
mod simulation;
mod support;
mod team_spaces;
mod two_way;
mod webhooks;
