//! The `poetry-harness` binary: all the work is in [`poetry_harness::cli`].

fn main() -> std::process::ExitCode {
    poetry_harness::cli::main()
}
