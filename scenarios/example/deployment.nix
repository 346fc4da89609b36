# A NixOps network with the one machine the provisioner expects.
{ type, tag, ... }:
{
  machine = { config, lib, pkgs, ... }: {
    deployment.targetEnv = "ec2";
    deployment.ec2.region = "us-east-1";
    deployment.ec2.instanceType = if lib.hasPrefix "aarch64" type then "m6g.xlarge" else "m4.xlarge";
    deployment.ec2.spotInstancePrice = 10;
    deployment.ec2.tags.provisioner = tag;
    imports = [ ../../nix/auto-shutdown.nix ];
  };
}
