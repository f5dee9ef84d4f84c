fn main() {
    std::process::exit(slimcap::shell::run());
}
