# Evaluates nix/module.nix with the stub lib. Arguments are JSON strings
# (for --argstr): `options` the values of services.hydra-provisioner.*
# (checked against the module's declarations, defaults filled in),
# `settings` its settings, `hydraEnabled` and `buildMachines` what the rest
# of the system says. `pkgs.runCommand` returns its arguments, so the test
# can run the build script itself.
{ options ? "{}"
, settings ? ''{"systemTypes": {"x86_64-linux": {"nixopsExpr": "/etc/hydra-provisioner/deployment.nix"}}}''
, hydraEnabled ? "true"
, buildMachines ? "[]"
}:
let
  lib = import ./stub-lib.nix;
  pkgs = {
    nix = "/nix/store/nix";
    runCommand = name: env: script: {
      inherit name env script;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    };
  };
  given = {
    enable = true;
    package = "/nix/store/hydra-provisioner";
    interval = "7min";
    environment = { RUST_LOG = "debug"; };
    settings = builtins.fromJSON settings;
  } // builtins.fromJSON options;
  config = {
    services.hydra-provisioner = lib.evalOptions "services.hydra-provisioner" module.options.services.hydra-provisioner given;
    services.hydra.enable = builtins.fromJSON hydraEnabled;
    nix.buildMachines = builtins.fromJSON buildMachines;
  };
  module = import ../../nix/module.nix { inherit config lib pkgs; };
  result = lib.resolve module.config;
  configDir = result.environment.etc.hydra-provisioner.source or null;
in {
  options = builtins.attrNames module.options.services.hydra-provisioner;
  settingsKeys = builtins.attrNames module.options.services.hydra-provisioner.settings.type.module.options;
  typeKeys = builtins.attrNames
    module.options.services.hydra-provisioner.settings.type.module.options.systemTypes.type.elemType.module.options;
  enabled = module.config.condition;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) result.assertions);
  service = result.systemd.services.hydra-provisioner;
  timer = result.systemd.timers.hydra-provisioner;
  users = result.users.users;
  groups = result.users.groups;
  tmpfiles = result.systemd.tmpfiles.rules;
  hydraMachinesFiles = result.services.hydra.buildMachinesFiles or null;
  nodeExporter = result.services.prometheus.exporters.node or null;
  configDir = if configDir == null then null else {
    path = configDir.outPath;
    inherit (configDir) script;
    json = configDir.env.json;
  };
}
