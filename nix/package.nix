# Builds hydra-provisioner from this repository with nixpkgs' Rust tooling:
#   pkgs.callPackage ./nix/package.nix { }
{ lib, rustPlatform }:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  version = cargoToml.package.version;
  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;
  # The test suite drives nix-instantiate and Python fakes of nixops and the
  # queue runner, which a build sandbox does not offer; .ci/run runs it.
  doCheck = false;
  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    mainProgram = "hydra-provisioner";
  };
}
