// musl's malloc unmaps freed memory at once: the pool keeps it (see shell::pool).
#[cfg(not(feature = "tokio"))]
#[global_allocator]
static POOL: slimcap::shell::pool::Pool = slimcap::shell::pool::Pool;

fn main() {
    #[cfg(not(feature = "tokio"))]
    std::process::exit(slimcap::shell::run());
    #[cfg(feature = "tokio")]
    std::process::exit(slimcap::shell_tokio::run());
}
