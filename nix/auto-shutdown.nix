# The builders' dead man's switch. Every pass of hydra-provisioner touches
# /run/keep-alive on each machine it keeps (`nixops ssh ... touch`). If the
# provisioner stops running (crash, lost credentials, deleted state), nobody
# touches the file any more and the machine powers itself off within about
# an hour instead of running, and being billed, forever.
#
# Imported by the network expression of every provisioned machine, e.g.
#   imports = [ <hydra-provisioner/auto-shutdown.nix> ];
# Deploys get `-I hydra-provisioner=<directory of the config>`: keep a copy
# of this file beside conf.nix, or use the NixOS module, which puts it beside
# the config it renders into the store. The package also installs it as
# share/hydra-provisioner/auto-shutdown.nix, to import by path.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.hydra-provisioner-builder;
in
{
  options.services.hydra-provisioner-builder = {
    keepAliveFile = lib.mkOption {
      type = lib.types.str;
      default = "/run/keep-alive";
      description = "File the provisioner touches on every pass.";
    };
    maxSilence = lib.mkOption {
      type = lib.types.int;
      default = 3600;
      description = "Power off when the keep-alive file is older than this many seconds.";
    };
  };

  config = {
    # A fresh boot counts as alive: the first deploy touches the file soon after.
    systemd.tmpfiles.rules = [ "f ${cfg.keepAliveFile} 0644 root root -" ];

    systemd.services.auto-shutdown = {
      description = "Power off when hydra-provisioner stopped touching ${cfg.keepAliveFile}";
      serviceConfig.Type = "oneshot";
      path = [ pkgs.coreutils pkgs.systemd ];
      script = ''
        if [ ! -e ${cfg.keepAliveFile} ]; then
          exit 0
        fi
        age=$(( $(date +%s) - $(stat -c %Y ${cfg.keepAliveFile}) ))
        if [ "$age" -gt ${toString cfg.maxSilence} ]; then
          echo "${cfg.keepAliveFile} is $age s old; powering off"
          systemctl poweroff
        fi
      '';
    };

    systemd.timers.auto-shutdown = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "15min";
        OnUnitActiveSec = "5min";
      };
    };
  };
}
