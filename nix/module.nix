# NixOS module: services.hydra-provisioner runs one pass of
# `hydra-provisioner run` every `interval` from a systemd timer, as its own
# user, with its lock and state file in /var/lib/hydra-provisioner.
#
#   imports = [ ./hydra-provisioner/nix/module.nix ];
#   services.hydra-provisioner = {
#     enable = true;
#     # package defaults to nix/package.nix built from this checkout
#     settings = {
#       systemTypes.x86_64-linux = {
#         nixopsExpr = toString ./deployment.nix;
#         maxMachines = 4;
#         runnablesPerMachine = 50;
#       };
#     };
#   };
{ config, lib, pkgs, ... }:

let
  cfg = config.services.hydra-provisioner;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # Our own defaults for where things live on NixOS; anything in `settings`
  # wins. The file is plain JSON, read as the same schema as conf.nix.
  settings = {
    stateDir = "/var/lib/hydra-provisioner";
    machinesFile = "/var/lib/hydra/provisioner/machines";
  } // cfg.settings;
  configFile = if cfg.configFile != null then cfg.configFile
    else pkgs.writeText "hydra-provisioner.json" (builtins.toJSON settings);
in
{
  options.services.hydra-provisioner = {
    enable = mkEnableOption "hydra-provisioner, the autoscaler of a Hydra server's build machines";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = "pkgs.callPackage ./package.nix { }";
      description = "The hydra-provisioner package (its binary is bin/hydra-provisioner).";
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      description = ''
        The provisioner's configuration, the same attribute set a conf.nix
        evaluates to (systemTypes, tag, statusCommand, updateCommand, ...;
        see README.md). Rendered to JSON in the Nix store.
      '';
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "Use this config file (conf.nix, .json or .toml) instead of `settings`.";
    };

    interval = mkOption {
      type = types.str;
      default = "5min";
      description = "Time between the end of one pass and the start of the next (systemd time span).";
    };

    user = mkOption {
      type = types.str;
      default = "hydra-provisioner";
      description = "User the passes run as. It needs the NixOps state and the cloud credentials.";
    };

    group = mkOption {
      type = types.str;
      default = "hydra-provisioner";
      description = "Group of that user.";
    };

    nixopsPackage = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = "NixOps to put on the service's PATH (nixopsCommand defaults to `nixops`).";
    };

    extraPath = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "More packages on the service's PATH (e.g. openssh for an ssh statusCommand, hydra for hydra-queue-runner).";
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { NIXOPS_STATE = "/var/lib/hydra-provisioner/deployments.nixops"; RUST_LOG = "info"; };
      description = "Environment of the passes (NixOps state file, AWS profile, log level).";
    };
  };

  config = mkIf cfg.enable {
    users.users = lib.optionalAttrs (cfg.user == "hydra-provisioner") {
      hydra-provisioner = {
        isSystemUser = true;
        group = cfg.group;
        home = "/var/lib/hydra-provisioner";
        description = "hydra-provisioner";
      };
    };
    users.groups = lib.optionalAttrs (cfg.group == "hydra-provisioner") {
      hydra-provisioner = { };
    };

    # The machines file's directory must exist and be ours; Hydra's queue
    # runner only needs to read it.
    systemd.tmpfiles.rules = lib.optional (cfg.configFile == null && !(settings ? updateCommand))
      "d ${builtins.dirOf settings.machinesFile} 0755 ${cfg.user} ${cfg.group} -";

    systemd.services.hydra-provisioner = {
      description = "hydra-provisioner: one pass over the Hydra build machines";
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [ cfg.package pkgs.nix ]
        ++ lib.optional (cfg.nixopsPackage != null) cfg.nixopsPackage
        ++ cfg.extraPath;
      environment = cfg.environment;
      serviceConfig = {
        Type = "oneshot";
        User = cfg.user;
        Group = cfg.group;
        ExecStart = "${cfg.package}/bin/hydra-provisioner run ${configFile}";
        StateDirectory = "hydra-provisioner";
        StateDirectoryMode = "0750";
        # A pass is bounded by deployTimeout per deploy; this is the backstop.
        TimeoutStartSec = "2h";
        # Ends nixops and its ssh children too if the pass is stopped.
        KillMode = "control-group";
        NoNewPrivileges = true;
        PrivateTmp = true;
      };
    };

    systemd.timers.hydra-provisioner = {
      description = "Run hydra-provisioner every ${cfg.interval}";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "2min";
        OnUnitInactiveSec = cfg.interval;
      };
    };
  };
}
