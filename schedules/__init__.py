"""APScheduler triggers: each job calls one decision function with an injected clock.

`jobs.JOBS` lists the jobs (fixed ids); `jobs.ScheduleRunner` runs them on the instance that
holds the leader lock (`leader.LeaderLock`); `decisions` holds the decision functions that
are not the signing service's (`lifecycle_api.signing.rollover`)."""
