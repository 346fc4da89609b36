# `nix-build` in a checkout builds the provisioner, as the original's
# default.nix did; NixOS users import nix/module.nix instead.
{ pkgs ? import <nixpkgs> { } }:
pkgs.callPackage ./nix/package.nix { }
