-- A small Hydra history for `trace import hydra-db`, loaded after
-- schema.sql. Times are Unix seconds around 2023-11-14 (the trace's zero is
-- midnight UTC, 1699920000). expected.csv is its import with features.toml.
-- Every case the importer maps or skips has a row here; the comment above
-- each build says which.

insert into SchemaVersion (version) values (87);
insert into Users (userName, emailAddress, password) values ('admin', 'admin@example.org', 'x');
insert into Projects (name, displayName, owner) values
  ('nixpkgs', 'Nixpkgs', 'admin'), ('nixos', 'NixOS', 'admin'), ('hydra', 'Hydra', 'admin');
insert into Jobsets (id, name, project, nixExprInput, nixExprPath, emailOverride, schedulingShares) values
  (1, 'trunk', 'nixpkgs', 'nixpkgs', 'pkgs/top-level/release.nix', '', 100),
  (2, 'staging-next', 'nixpkgs', 'nixpkgs', 'pkgs/top-level/release.nix', '', 50),
  (3, 'trunk-combined', 'nixos', 'nixpkgs', 'nixos/release-combined.nix', '', 200),
  (4, 'master', 'hydra', 'hydra', 'release.nix', '', 10);

-- Build 1: a build with dependencies: glibc, zlib (aborted on b2, retried on b1: transient), a substitution (skipped), the top-level hello last.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (1, 1, 1700000000, 1, 'hello.x86_64-linux', '/nix/store/11111111111111111111111111111111-hello-2.12.1.drv', 'x86_64-linux', 100, 0, 1700000140, 1700000160, 0, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (1, 1, 0, '/nix/store/22222222222222222222222222222222-glibc-2.38.drv', 0, 0, 1700000010, 1700000070, 'ssh://root@b1', 'x86_64-linux', NULL, 1500, NULL),
  (1, 2, 0, '/nix/store/33333333333333333333333333333333-zlib-1.3.drv', 0, 3, 1700000012, 1700000020, 'ssh://root@b2', 'x86_64-linux', NULL, NULL, NULL),
  (1, 3, 0, '/nix/store/33333333333333333333333333333333-zlib-1.3.drv', 0, 0, 1700000100, 1700000130, 'ssh://root@b1', 'x86_64-linux', NULL, 200, NULL),
  (1, 4, 1, '/nix/store/44444444444444444444444444444444-bash-5.2.drv', 0, 0, 1700000005, 1700000006, '', NULL, NULL, NULL, NULL),
  (1, 5, 0, '/nix/store/11111111111111111111111111111111-hello-2.12.1.drv', 0, 0, 1700000140, 1700000160, 'ssh://root@b3', 'x86_64-linux', NULL, 300, NULL);

-- Build 2: bumped (globalPriority = time of the bump); big-parallel dependencies by the features rules; the browser failed, so the top-level never ran.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (2, 1, 1700000000, 1, 'firefox.x86_64-linux', '/nix/store/55555555555555555555555555555555-firefox-121.0.drv', 'x86_64-linux', 100, 1700000500, 1700001900, 1700003000, 0, 2);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (2, 1, 0, '/nix/store/77777777777777777777777777777777-rustc-1.74.0.drv', 0, 0, 1700000030, 1700001830, 'ssh://root@big1', 'x86_64-linux', NULL, 4000, NULL),
  (2, 2, 0, '/nix/store/88888888888888888888888888888888-nss-3.95.drv', 0, 0, 1700000040, 1700000340, 'ssh://root@b2', 'x86_64-linux', NULL, NULL, NULL),
  (2, 3, 0, '/nix/store/66666666666666666666666666666666-firefox-unwrapped-121.0.drv', 0, 1, 1700001900, 1700003000, 'ssh://root@big1', 'x86_64-linux', NULL, 2500, NULL);

-- Build 3: a cached build: no steps.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (3, 1, 1700000000, 1, 'nano.x86_64-linux', '/nix/store/99999999999999999999999999999999-nano-7.2.drv', 'x86_64-linux', 100, 0, 1700000001, 1700000001, 1, 0);

-- Build 4: a NixOS test that timed out (status 7) after its system was built.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (4, 1, 1700000300, 3, 'nixos.tests.login.x86_64-linux', '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-vm-test-run-login.drv', 'x86_64-linux', 100, 0, 1700000410, 1700004010, 0, 7);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (4, 1, 0, '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-machine-23.11.drv', 0, 0, 1700000310, 1700000400, 'ssh://root@b2', 'x86_64-linux', NULL, 800, NULL),
  (4, 2, 0, '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-vm-test-run-login.drv', 0, 7, 1700000410, 1700004010, 'ssh://root@kvm1', 'x86_64-linux', NULL, 100, NULL);

-- Build 5: aarch64; the first attempt was aborted by a C++ queue-runner restart (stopTime NULL), the retry succeeded: one transient step.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (5, 1, 1700000300, 1, 'hello.aarch64-linux', '/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12.1.drv', 'aarch64-linux', 100, 0, 1700000700, 1700000745, 0, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (5, 1, 0, '/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12.1.drv', 0, 3, 1700000320, NULL, 'ssh://root@arm1', 'aarch64-linux', NULL, NULL, NULL),
  (5, 2, 0, '/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12.1.drv', 0, 0, 1700000700, 1700000745, 'ssh://root@arm1', 'aarch64-linux', NULL, NULL, NULL);

-- Build 6: a C++-era row whose builder clock ran behind (stop < start), a row with zero times, and the top-level.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (6, 1, 1700000600, 4, 'hydra.x86_64-linux', '/nix/store/dddddddddddddddddddddddddddddddd-hydra-0.1.drv', 'x86_64-linux', 100, 0, 1700000700, 1700001300, 0, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (6, 1, 0, '/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-perl-deps.drv', 0, 0, 1700000650, 1700000640, 'ssh://root@b1', 'x86_64-linux', NULL, 900, NULL),
  (6, 2, 0, '/nix/store/ffffffffffffffffffffffffffffffff-nix-2.18.1.drv', 0, 0, 0, 0, 'ssh://root@b1', 'x86_64-linux', NULL, NULL, NULL),
  (6, 3, 0, '/nix/store/dddddddddddddddddddddddddddddddd-hydra-0.1.drv', 0, 0, 1700000700, 1700001300, 'ssh://root@b1', 'x86_64-linux', NULL, 1000, NULL);

-- Build 7: still running.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (7, 0, 1700000900, 1, 'python3.x86_64-linux', '/nix/store/gggggggggggggggggggggggggggggggg-python3-3.11.6.drv', 'x86_64-linux', 100, 0, NULL, NULL, NULL, NULL);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (7, 1, 0, '/nix/store/gggggggggggggggggggggggggggggggg-python3-3.11.6.drv', 1, NULL, 1700000950, NULL, 'ssh://root@b3', 'x86_64-linux', NULL, NULL, NULL);

-- Build 8: staging-next firefox: the failure of build 2 propagated here, and a cached failure.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (8, 1, 1700001000, 2, 'firefox.x86_64-linux', '/nix/store/hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-firefox-121.0.drv', 'x86_64-linux', 100, 0, 1700003000, 1700003000, 0, 2);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (8, 1, 0, '/nix/store/66666666666666666666666666666666-firefox-unwrapped-121.0.drv', 0, 1, NULL, NULL, 'ssh://root@big1', 'x86_64-linux', 2, NULL, NULL),
  (8, 2, 0, '/nix/store/iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii-libfoo-1.0.drv', 0, 8, NULL, NULL, '', 'x86_64-linux', NULL, NULL, NULL);

-- Build 9: no machine for riscv64.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (9, 1, 1700001000, 1, 'hello.riscv64-linux', '/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-hello-2.12.1.drv', 'riscv64-linux', 100, 0, 1700001005, 1700001005, 0, 9);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (9, 1, 0, '/nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-hello-2.12.1.drv', 0, 9, 1700001005, 1700001005, '', 'riscv64-linux', NULL, NULL, NULL);

-- Build 10: the next day, a low-priority staging-next build with eleven dependencies on three machines, a resolved content-addressed step, and its top-level.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (10, 1, 1700090000, 2, 'stdenv.x86_64-linux', '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-stdenv-linux.drv', 'x86_64-linux', 50, 0, 1700091000, 1700091005, 0, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (10, 1, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk1-dep-01.drv', 0, 0, 1700090100, 1700090110, 'ssh://root@b2', 'x86_64-linux', NULL, 100, NULL),
  (10, 2, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk2-dep-02.drv', 0, 0, 1700090200, 1700090220, 'ssh://root@b3', 'x86_64-linux', NULL, 200, NULL),
  (10, 3, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk3-dep-03.drv', 0, 0, 1700090300, 1700090330, 'ssh://root@b1', 'x86_64-linux', NULL, 300, NULL),
  (10, 4, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk4-dep-04.drv', 0, 0, 1700090400, 1700090440, 'ssh://root@b2', 'x86_64-linux', NULL, 400, NULL),
  (10, 5, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk5-dep-05.drv', 0, 0, 1700090500, 1700090550, 'ssh://root@b3', 'x86_64-linux', NULL, 500, NULL),
  (10, 6, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk6-dep-06.drv', 0, 0, 1700090600, 1700090660, 'ssh://root@b1', 'x86_64-linux', NULL, 600, NULL),
  (10, 7, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk7-dep-07.drv', 0, 0, 1700090700, 1700090770, 'ssh://root@b2', 'x86_64-linux', NULL, 700, NULL),
  (10, 8, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk8-dep-08.drv', 0, 0, 1700090800, 1700090880, 'ssh://root@b3', 'x86_64-linux', NULL, 800, NULL),
  (10, 9, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk9-dep-09.drv', 0, 0, 1700090900, 1700090990, 'ssh://root@b1', 'x86_64-linux', NULL, 900, NULL),
  (10, 10, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkka-dep-10.drv', 0, 0, 1700091000, 1700091100, 'ssh://root@b2', 'x86_64-linux', NULL, 1000, NULL),
  (10, 11, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkb-dep-11.drv', 0, 0, 1700091100, 1700091210, 'ssh://root@b3', 'x86_64-linux', NULL, 1100, NULL),
  (10, 12, 0, '/nix/store/llllllllllllllllllllllllllllllll-ca-thing.drv', 0, 13, 1700090050, 1700090050, 'ssh://root@b1', 'x86_64-linux', NULL, NULL, 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm-ca-thing.drv'),
  (10, 13, 0, '/nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-stdenv-linux.drv', 0, 0, 1700091000, 1700091005, 'ssh://root@b2', 'x86_64-linux', NULL, NULL, NULL);

-- Build 11: an ISO restarted by hand after a failure: the later success is the step, not transient (Hydra does not retry a failure); late enough to be the Rust runner's in the --rust-runner-since test.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (11, 1, 1700100000, 3, 'nixos.iso_minimal.x86_64-linux', '/nix/store/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-nixos-minimal-23.11-x86_64-linux.iso.drv', 'x86_64-linux', 100, 0, 1700100200, 1700100500, 0, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (11, 1, 0, '/nix/store/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-nixos-minimal-23.11-x86_64-linux.iso.drv', 0, 1, 1700100010, 1700100100, 'ssh://root@big1', 'x86_64-linux', NULL, 5000, NULL),
  (11, 2, 0, '/nix/store/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-nixos-minimal-23.11-x86_64-linux.iso.drv', 0, 0, 1700100200, 1700100500, 'ssh://root@big1', 'x86_64-linux', NULL, 5000, NULL);

-- Build 12: marked cached, but its own step did real work: imported.
insert into Builds (id, finished, timestamp, jobset_id, job, drvPath, system, priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus) values
  (12, 1, 1700100000, 4, 'tests.x86_64-linux', '/nix/store/oooooooooooooooooooooooooooooooo-hydra-tests.drv', 'x86_64-linux', 100, 0, 1700100050, 1700100110, 1, 0);
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime, stopTime, machine, system, propagatedFrom, overhead, resolvedDrvPath) values
  (12, 1, 0, '/nix/store/oooooooooooooooooooooooooooooooo-hydra-tests.drv', 0, 0, 1700100050, 1700100110, 'ssh://root@b3', 'x86_64-linux', NULL, NULL, NULL);

select setval('builds_id_seq', 12);

insert into JobsetEvals (id, jobset_id, timestamp, checkoutTime, evalTime, hasNewBuilds, hash, nrBuilds) values
  (1, 1, 1700000000, 3, 40, 1, 'e1', 6), (2, 3, 1700000300, 2, 20, 1, 'e2', 2),
  (3, 4, 1700000600, 1, 5, 1, 'e3', 2), (4, 2, 1700001000, 3, 35, 1, 'e4', 2);
insert into JobsetEvalMembers (eval, build, isNew) values
  (1, 1, 1), (1, 2, 1), (1, 3, 1), (1, 5, 1), (1, 7, 1), (1, 9, 1), (2, 4, 1), (2, 11, 1),
  (3, 6, 1), (3, 12, 1), (4, 8, 1), (4, 10, 1);
