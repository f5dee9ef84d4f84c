//! Lambda platform emulator (to be written)
