-- 90 % read / 10 % write workload: the write part, one autocommit UPDATE (run with -D scale=N).
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
