fn main() -> std::process::ExitCode {
    hydra_provisioner::cli::main()
}
