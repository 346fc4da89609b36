# Evaluates nix/package.nix with a stub rustPlatform that returns its
# arguments, so the test can check what the build would be given and run
# its install script.
let
  lib = {
    cleanSource = src: src;
    licenses.mit = "mit";
    optionalString = condition: s: if condition then s else "";
  };
  rustPlatform.buildRustPackage = args: args;
  stdenv = {
    buildPlatform.canExecute = platform: platform == "native";
    hostPlatform = "native";
  };
  drv = import ../../nix/package.nix { inherit lib rustPlatform stdenv; installShellFiles = "installShellFiles"; };
in {
  inherit (drv) pname version doCheck nativeBuildInputs postInstall;
  lockFile = toString drv.cargoLock.lockFile;
  lockFileExists = builtins.pathExists drv.cargoLock.lockFile;
  mainProgram = drv.meta.mainProgram;
}
