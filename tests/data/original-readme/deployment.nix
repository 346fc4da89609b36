# The "type" argument corresponds to the system type (such as
# "x86_64-linux:benchmark"), and can be used for creating different
# kinds of machines from the same NixOps specification.
{ type, tag, ... }:

{
  machine =
    { config, lib, pkgs, ... }:
    {
      deployment.targetEnv = "virtualbox";
      nix.gc.automatic = true;
      nix.gc.dates = "*:0/30";
    };
}
