use clap::Parser;

fn main() -> std::process::ExitCode {
    kuduhook::run(kuduhook::cli::Cli::parse())
}
