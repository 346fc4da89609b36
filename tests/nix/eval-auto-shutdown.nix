# Evaluates nix/auto-shutdown.nix with a stub lib, for a given keep-alive
# file, so the test can run the generated script.
{ keepAliveFile, maxSilence ? 3600 }:
let
  lib = import ./stub-lib.nix;
  pkgs = { coreutils = "coreutils"; systemd = "systemd"; };
  module = import ../../nix/auto-shutdown.nix {
    inherit lib pkgs;
    config.services.hydra-provisioner-builder = { inherit keepAliveFile maxSilence; };
  };
in {
  script = module.config.systemd.services.auto-shutdown.script;
  timer = module.config.systemd.timers.auto-shutdown.timerConfig;
  tmpfiles = module.config.systemd.tmpfiles.rules;
}
