# NixOS module: services.hydra-provisioner runs one pass of
# `hydra-provisioner run` every `interval` from a systemd timer, as its own
# user, with its lock and state file in /var/lib/hydra-provisioner, and
# (by default, when Hydra runs on the same host) adds its machines file to
# services.hydra.buildMachinesFiles.
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
#     prometheus.enable = true;   # textfile for node_exporter, alert rules in contrib/
#   };
#
# `settings` is typed: every key the provisioner knows has its type, and a
# key it does not know (a typo) fails the evaluation of the system, not a
# pass at 3 a.m. `extraSettings` is the way around that check, for keys of
# a newer provisioner than this module knows.
#
# The rendered config lives in the Nix store, in a directory that also
# holds auto-shutdown.nix. Deploys get `-I hydra-provisioner=<that
# directory>`, so network expressions import the builders' dead man's
# switch as <hydra-provisioner/auto-shutdown.nix> (and, for the Rust queue
# runner, the builder service as <hydra-provisioner/builder.nix>).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.hydra-provisioner;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;

  # An optional setting: unset (null) leaves the provisioner's own default.
  optional = type: description: mkOption {
    type = types.nullOr type;
    default = null;
    inherit description;
  };
  seconds = description: optional types.ints.unsigned "${description} (seconds).";
  argv = description: optional (types.listOf types.str) description;
  billing = optional (types.enum [ "hourly" "per-second" ])
    "Billing model: `hourly` (NixOps's next-charge rule) or `per-second` (60 s minimum).";

  typeOptions = {
    options = {
      nixopsExpr = mkOption {
        type = types.str;
        description = "NixOps network expression (a path) with one machine named `machine`; it gets the arguments `type` and `tag`.";
      };
      nixPath = argv "`-I` entries for the deployment.";
      minMachines = optional types.ints.unsigned "Machines kept even without demand.";
      maxMachines = optional types.ints.unsigned "Most machines serving this type's demand (default 1).";
      ignoredRunnables = optional types.ints.unsigned "Runnable steps left to machines that are not provisioned.";
      runnablesPerMachine = optional types.ints.positive "Runnable steps per machine (default 10).";
      maxJobs = optional types.ints.positive "Machines-file column: jobs per machine (default 1).";
      speedFactor = optional types.number "Machines-file column: speed factor (default 1).";
      sshKey = optional types.str "Machines-file column: the queue runner's ssh key (default `-`).";
      stopOnIdle = optional types.bool "Stop idle machines instead of destroying them.";
      gracePeriod = seconds "Keep an idle machine this long after its type was last active";
      inherit billing;
      maxCreationsPerPass = optional types.ints.unsigned "New deployments of this type per pass (default 1).";
    };
  };

  # Every key of the provisioner's configuration (README.md, "Configuration").
  settingsOptions = {
    options = {
      tag = optional types.str "Marks the NixOps deployments this provisioner owns; prefix of their names.";
      statusCommand = argv "Command printing the queue runner's status JSON (default `hydra-queue-runner --status`).";
      sshCommand = argv "Old name of statusCommand.";
      statusUrl = optional types.str "The Rust queue runner's `/status` URL (http or https), instead of statusCommand.";
      statusTokenFile = optional types.str "File holding a bearer token sent with statusUrl requests (read by the service's user).";
      statusCaFile = optional types.str "PEM file of the certificate authorities trusted for an https statusUrl (instead of the built-in roots).";
      updateCommand = argv "Command receiving the machines file on stdin, instead of writing machinesFile.";
      machinesFile = optional types.str "Where the machines file is written (default /var/lib/hydra/provisioner/machines).";
      stateDir = optional types.str "Lock and state file (default /var/lib/hydra-provisioner).";
      nixopsCommand = argv "Command prefix for NixOps (default `nixops`).";
      quirks = optional (types.enum [ "fixed" "original" ]) "`original` reproduces the original's decisions, defects included.";
      runner = optional (types.enum [ "cpp" "rust" ]) "The queue runner's generation: `cpp` (machines file, default) or `rust` (builders join by themselves; see docs/production.md).";
      runnerEndpoint = optional types.str "With runner = rust: the gRPC endpoint builders dial, handed to deployments as `runnerEndpoint`.";
      builderTokenPath = optional types.str "With runner = rust: the bearer token file's path on the builders, handed to deployments as `tokenPath`.";
      storeDir = optional types.str "With runner = rust: the store the runner's `.drv` names are in (default /nix/store).";
      builderService = optional types.str "With runner = rust: the builders' systemd unit (default hydra-queue-builder-dev.service).";
      watchdogReport = seconds "With runner = rust: report a builder silent this long";
      watchdogReplace = seconds "With runner = rust: replace a builder silent this long";
      runnerMaxTries = optional types.ints.positive "With runner = rust: the runner's tries per step (default 5).";
      inherit billing;
      keepPaidThreshold = seconds "Keep and list an unneeded machine with this much paid time left";
      destroyPaidThreshold = seconds "Never stop or destroy a running machine with this much paid time left";
      maxCreationsPerPass = optional types.ints.unsigned "New deployments per type per pass (default 1).";
      maxDeployFailures = optional types.ints.unsigned "Replace a deployment after this many failed deploys in a row (0 = never).";
      drainBeforeDestroy = optional types.bool "Delist a machine first, stop or destroy it in a later pass.";
      drainDelay = seconds "How long a machine stays delisted before it may go";
      restartGuard = seconds "No idle machine expires while the queue runner is younger than this";
      redeployInterval = seconds "Redeploy an unchanged machine at least this often (0 = only on change)";
      addressTimeout = seconds "Destroy a running machine that has had no address this long (if not busy)";
      notRunningTimeout = seconds "Leave a machine NixOps reports not running this long before it goes";
      deployConcurrency = optional types.ints.positive "NixOps commands run at once (default 4).";
      deployTimeout = seconds "Timeout of one deploy";
      commandTimeout = seconds "Timeout of other commands";
      prometheusTextfile = optional types.str "node_exporter textfile (set by `prometheus.enable`).";
      recordDir = optional types.str "Append every pass to passes.jsonl here, for `hydra-provisioner replay`.";
      recordMaxBytes = optional types.ints.unsigned "Rotate the record file before it passes this size.";
      recordKeep = optional types.ints.unsigned "Rotated record files kept (0 = all).";
      systemTypes = mkOption {
        type = types.attrsOf (types.submodule typeOptions);
        default = { };
        description = "One entry per Hydra machine type (`systems[:features]`, e.g. `x86_64-linux:big-parallel,kvm`).";
      };
    };
  };

  withoutNulls = lib.filterAttrsRecursive (_: value: value != null);
  textfile = "${cfg.prometheus.textfileDirectory}/hydra-provisioner.prom";

  # Our own defaults for where things live on NixOS; anything in `settings`
  # wins, `extraSettings` over all. The file is JSON, the same schema as conf.nix.
  settings = lib.recursiveUpdate
    ({
      stateDir = "/var/lib/hydra-provisioner";
      machinesFile = "/var/lib/hydra/provisioner/machines";
    } // lib.optionalAttrs cfg.prometheus.enable { prometheusTextfile = textfile; }
      // withoutNulls cfg.settings)
    cfg.extraSettings;
  writesMachinesFile = cfg.configFile == null && !(settings ? updateCommand);

  # conf.json beside auto-shutdown.nix: the config's directory is what
  # deploys get as -I hydra-provisioner=..., and a file alone in the store
  # would make that /nix/store.
  configDir = pkgs.runCommand "hydra-provisioner-config"
    {
      json = builtins.toJSON settings;
      passAsFile = [ "json" ];
    }
    ''
      mkdir -p $out
      cp "$jsonPath" $out/conf.json
      cp ${./auto-shutdown.nix} $out/auto-shutdown.nix
      cp ${./builder.nix} $out/builder.nix
    '';
  configFile = if cfg.configFile != null then cfg.configFile else "${configDir}/conf.json";
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
      type = types.submodule settingsOptions;
      default = { };
      description = ''
        The provisioner's configuration, the attribute set a conf.nix
        evaluates to (systemTypes, tag, statusCommand, updateCommand, ...;
        see README.md), with every key typed: an unknown key or a wrong type
        fails the evaluation. Rendered to JSON in the Nix store.
      '';
    };

    extraSettings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      description = ''
        Keys merged over `settings` without type checks, for keys of a
        newer provisioner than this module knows. The provisioner itself
        still warns about keys it does not know.
      '';
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        Use this config file (conf.nix, .json or .toml) instead of
        `settings`. Deploys get its directory as -I hydra-provisioner=...,
        so give a path outside the store (a string such as
        "/etc/hydra-provisioner/conf.nix") if network expressions import
        files next to it.
      '';
    };

    addToHydra = mkOption {
      type = types.bool;
      default = (config.services.hydra.enable or false) && writesMachinesFile;
      defaultText = "config.services.hydra.enable, unless settings.updateCommand or configFile is set";
      description = ''
        Add the machines file to services.hydra.buildMachinesFiles, so
        Hydra's queue runner on this host uses the provisioned machines
        (besides /etc/nix/machines when nix.buildMachines is set, which
        would otherwise drop out of Hydra's list). Needs the machines file,
        not updateCommand.
      '';
    };

    prometheus = {
      enable = mkEnableOption "the Prometheus textfile (counters and gauges of every pass) for node_exporter's textfile collector";

      textfileDirectory = mkOption {
        type = types.str;
        default = "/var/lib/prometheus-node-exporter-text-files";
        description = ''
          node_exporter's textfile directory; the service's user gets write
          access to it (an ACL) and writes hydra-provisioner.prom there.
        '';
      };

      configureNodeExporter = mkOption {
        type = types.bool;
        default = true;
        description = "Enable node_exporter's textfile collector on textfileDirectory (services.prometheus.exporters.node).";
      };
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

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = !(cfg.addToHydra && !writesMachinesFile);
          message = "services.hydra-provisioner.addToHydra needs the machines file: unset settings.updateCommand and configFile, or set addToHydra = false.";
        }
      ];

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
      # runner only needs to read it. The textfile directory is shared with
      # other writers: an ACL gives our user write access without taking it over.
      systemd.tmpfiles.rules =
        lib.optional writesMachinesFile "d ${builtins.dirOf settings.machinesFile} 0755 ${cfg.user} ${cfg.group} -"
        ++ lib.optionals cfg.prometheus.enable [
          "d ${cfg.prometheus.textfileDirectory} 0755 root root -"
          "a+ ${cfg.prometheus.textfileDirectory} - - - - u:${cfg.user}:rwx"
        ];

      # The effective configuration, for `hydra-provisioner run
      # /etc/hydra-provisioner/conf.json --dry-run` by hand.
      environment.etc = lib.optionalAttrs (cfg.configFile == null) {
        "hydra-provisioner".source = configDir;
      };

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
          ReadWritePaths = lib.optional cfg.prometheus.enable cfg.prometheus.textfileDirectory;
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
    }

    (mkIf (cfg.addToHydra && writesMachinesFile) {
      services.hydra.buildMachinesFiles = [ settings.machinesFile ]
        ++ lib.optional (config.nix.buildMachines != [ ]) "/etc/nix/machines";
    })

    (mkIf (cfg.prometheus.enable && cfg.prometheus.configureNodeExporter) {
      services.prometheus.exporters.node = {
        enable = true;
        enabledCollectors = [ "textfile" ];
        extraFlags = [ "--collector.textfile.directory=${cfg.prometheus.textfileDirectory}" ];
      };
    })
  ]);
}
