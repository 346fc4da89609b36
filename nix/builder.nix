# A builder for Hydra's Rust queue runner, provisioned by hydra-provisioner
# with `runner = "rust"`. It configures upstream Hydra's builder service
# (`services.hydra-queue-builder-dev`, from Hydra's `nixosModules.builder`,
# which must be imported too) from the arguments every deployment gets
# through `nixops set-args --argstr`:
#
#   type            the machine type, `systems[:features]`
#   hostname        the deployment's name: the builder registers under it,
#                   so each one is unique and the provisioner finds it
#   runnerEndpoint  the runner's gRPC endpoint (`--gateway-endpoint`)
#   tokenPath       where the bearer token lies on the builder (optional;
#                   deliver it with `deployment.keys`), else mTLS is yours
#   maxJobs, speedFactor   the config's columns of the type
#
# The network expression passes its arguments on, e.g.
#
#   { type, tag, ... }@args: {
#     machine = { ... }: {
#       imports = [ hydra.nixosModules.builder
#                   (import <hydra-provisioner/builder.nix> args)
#                   <hydra-provisioner/auto-shutdown.nix> ];
#       deployment.targetEnv = "ec2"; # ...
#     };
#   }
#
# The systems and features follow the type as the machines file of the C++
# runner did: `x86_64-linux` also builds `i686-linux`, and the type's
# features are both supported and mandatory, so a `x86_64-linux:kvm`
# builder takes only steps that require `kvm`.
{ type
, hostname
, runnerEndpoint
, tokenPath ? null
, maxJobs ? "1"
, speedFactor ? "1"
, ...
}:
{ ... }:
let
  words = sep: s: builtins.filter (w: builtins.isString w && w != "") (builtins.split sep s);
  parts = words ":" type;
  systems = words "," (builtins.head parts);
  features = if builtins.length parts > 1 then words "," (builtins.elemAt parts 1) else [ ];
  withI686 =
    if builtins.elem "x86_64-linux" systems && !(builtins.elem "i686-linux" systems)
    then systems ++ [ "i686-linux" ]
    else systems;
  # NixOps hands every argument over as a string.
  number = s: builtins.fromJSON s;
in
{
  networking.hostName = hostname;

  services.hydra-queue-builder-dev = {
    enable = true;
    queueRunnerAddr = runnerEndpoint;
    authorizationFile = tokenPath;
    settings = {
      systems = withI686;
      supportedFeatures = features;
      mandatoryFeatures = features;
      maxJobs = number maxJobs;
      speedFactor = number speedFactor;
    };
  };
}
