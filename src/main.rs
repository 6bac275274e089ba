fn main() -> std::process::ExitCode {
    kuduhook::run(kuduhook::cli::Cli::from_env())
}
