# Evaluates nix/module.nix with a stub lib and the given option values;
# `pkgs.writeText` returns the text itself behind a marker so the test can
# read the rendered config out of ExecStart.
let
  settings = { systemTypes.x86_64-linux.nixopsExpr = "/etc/hydra-provisioner/deployment.nix"; };
  lib = import ./stub-lib.nix;
  pkgs = { writeText = name: text: "WRITETEXT:${text}"; nix = "/nix/store/nix"; };
  cfg = {
    enable = true; package = "/nix/store/hydra-provisioner"; inherit settings;
    configFile = null; interval = "7min"; user = "hydra-provisioner"; group = "hydra-provisioner";
    nixopsPackage = null; extraPath = [ ]; environment = { RUST_LOG = "debug"; };
  };
  module = import ../../nix/module.nix { inherit lib pkgs; config.services.hydra-provisioner = cfg; };
in {
  options = builtins.attrNames module.options.services.hydra-provisioner;
  enabled = module.config.condition;
  service = module.config.content.systemd.services.hydra-provisioner;
  timer = module.config.content.systemd.timers.hydra-provisioner;
  users = module.config.content.users.users;
  groups = module.config.content.users.groups;
  tmpfiles = module.config.content.systemd.tmpfiles.rules;
}
