# The original hydra-provisioner's README example, with two more types.
{
  systemTypes.x86_64-linux = {
    nixopsExpr = builtins.toPath ./deployment.nix;
    minMachines = 0;
    maxMachines = 4;
    ignoredRunnables = 20;
    runnablesPerMachine = 10;
    maxJobs = 4;
    speedFactor = 2;
    sshKey = "/var/lib/hydra/queue-runner/.ssh/id_buildfarm";
    gracePeriod = 600;
  };
  systemTypes."x86_64-linux:big-parallel,kvm" = {
    nixopsExpr = builtins.toPath ./deployment.nix;
    maxMachines = 2;
    runnablesPerMachine = 5;
    maxJobs = 2;
  };
  systemTypes.aarch64-linux = {
    nixopsExpr = builtins.toPath ./deployment.nix;
    maxMachines = 2;
    stopOnIdle = true;
  };
  statusCommand = [ "hydra-queue-runner" "--status" ];
}
