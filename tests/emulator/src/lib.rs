//! Lambda platform emulator (docs to be written)
pub mod http;
pub mod util;
mod types;
mod emulator;
pub mod fake;
pub mod intake;
pub use intake::{FakeIntake, IntakeMode, IntakeRequest};
pub use types::*;
pub use emulator::Emulator;
pub use util::now_ms;
