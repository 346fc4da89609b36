# Builds hydra-provisioner from this repository with nixpkgs' Rust tooling:
#   pkgs.callPackage ./nix/package.nix { }
# Installs the binary, its man pages (one per subcommand), bash, zsh and fish
# completions, and the builders' auto-shutdown.nix under share/hydra-provisioner.
{ lib, stdenv, rustPlatform, installShellFiles }:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  version = cargoToml.package.version;
  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;
  nativeBuildInputs = [ installShellFiles ];
  # The test suite drives nix-instantiate and Python fakes of nixops and the
  # queue runner, which a build sandbox does not offer; .ci/run runs it.
  doCheck = false;
  # Completions and man pages come from the binary itself, which a cross
  # build cannot run.
  postInstall = ''
    install -Dm644 nix/auto-shutdown.nix $out/share/hydra-provisioner/auto-shutdown.nix
    install -Dm644 nix/builder.nix $out/share/hydra-provisioner/builder.nix
  '' + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    installShellCompletion --cmd hydra-provisioner \
      --bash <($out/bin/hydra-provisioner completions bash) \
      --zsh <($out/bin/hydra-provisioner completions zsh) \
      --fish <($out/bin/hydra-provisioner completions fish)
    $out/bin/hydra-provisioner man --out-dir man
    installManPage man/*.1
  '';
  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    mainProgram = "hydra-provisioner";
  };
}
