fn main() {
    #[cfg(not(feature = "tokio"))]
    std::process::exit(slimcap::shell::run());
    #[cfg(feature = "tokio")]
    std::process::exit(slimcap::shell_tokio::run());
}
