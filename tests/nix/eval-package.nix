# Evaluates nix/package.nix with a stub rustPlatform that returns its
# arguments, so the test can check what the build would be given.
let
  lib = { cleanSource = src: src; licenses.mit = "mit"; };
  rustPlatform.buildRustPackage = args: args;
  drv = import ../../nix/package.nix { inherit lib rustPlatform; };
in {
  inherit (drv) pname version doCheck;
  lockFile = toString drv.cargoLock.lockFile;
  lockFileExists = builtins.pathExists drv.cargoLock.lockFile;
  mainProgram = drv.meta.mainProgram;
}
