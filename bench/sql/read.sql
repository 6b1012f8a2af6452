-- 90 % read / 10 % write workload: the read part (run with -D scale=N).
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
