/// The static Linux build (musl: the binary a Linux site commits) allocates with mimalloc. musl's
/// own allocator, behind one lock and quick to give memory back to the system, made an unchanged
/// re-sync of 10,000 files 50% slower than the glibc build (docs/benchmarks.md). Built without
/// transparent huge pages: with them an unchanged re-sync of 10,000 files held 38 MB, not 14.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kuduhook::run(kuduhook::cli::Cli::from_env())
}
