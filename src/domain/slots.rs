//! Sharing free global call slots among organizations (SPEC 4): in
//! proportion to each one's `concurrency_limit`, never past its remaining
//! room; whole slots by floor first, then leftovers to the largest
//! fractional remainders.
//!
//! Slots a capped organization cannot take are shared again among the
//! others by the same rule, so no line idles while another organization has
//! room and work.
//!
//! Slots often free up one at a time; shared alone, a single slot would
//! always go to the largest limit and starve the rest. So each claim first
//! fills organizations only up to their proportional share of the whole
//! global limit (`fair_rooms`), and only then up to their own limits. When
//! many slots are free at once, the first pass is exactly the rule above.

/// One organization asking for slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimant {
    /// The organization's `concurrency_limit`: its weight.
    pub limit: u32,
    /// How many more calls it may have now (limit minus active calls).
    pub room: u32,
}

/// Shares `free` slots; the result is in the order of `claimants`.
pub fn allocate(free: u32, claimants: &[Claimant]) -> Vec<u32> {
    let mut given = vec![0u32; claimants.len()];
    let mut free = u64::from(free);
    while free > 0 {
        let open: Vec<usize> = (0..claimants.len())
            .filter(|&i| claimants[i].room > given[i] && claimants[i].limit > 0)
            .collect();
        if open.is_empty() {
            break;
        }
        let round = share_round(free, &open, claimants, &given);
        let handed: u64 = round.iter().map(|&(_, n)| u64::from(n)).sum();
        if handed == 0 {
            break;
        }
        for (i, n) in round {
            given[i] += n;
        }
        free -= handed;
    }
    given
}

/// One round of the rule over the `open` claimants.
fn share_round(
    free: u64,
    open: &[usize],
    claimants: &[Claimant],
    given: &[u32],
) -> Vec<(usize, u32)> {
    let total: u64 = open.iter().map(|&i| u64::from(claimants[i].limit)).sum();
    let mut shares: Vec<(usize, u32, u64, u32)> = open
        .iter()
        .map(|&i| {
            let exact = free * u64::from(claimants[i].limit);
            let room = claimants[i].room - given[i];
            let whole = (exact / total).min(u64::from(room)) as u32;
            (i, whole, exact % total, room)
        })
        .collect();
    let mut leftover = free - shares.iter().map(|s| u64::from(s.1)).sum::<u64>();
    // Largest remainder first; ties go to the larger limit, then to the earlier claimant.
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let (ia, _, ra, _) = shares[a];
        let (ib, _, rb, _) = shares[b];
        rb.cmp(&ra)
            .then(claimants[ib].limit.cmp(&claimants[ia].limit))
            .then(ia.cmp(&ib))
    });
    for k in order {
        if leftover == 0 {
            break;
        }
        let share = &mut shares[k];
        if share.2 > 0 && share.1 < share.3 {
            share.1 += 1;
            leftover -= 1;
        }
    }
    shares.into_iter().map(|(i, n, _, _)| (i, n)).collect()
}

/// An organization's limit and its calls in progress now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub limit: u32,
    pub active: u32,
}

/// Each organization's room up to its proportional share of `global_limit`
/// among the organizations listed (those with due work).
pub fn fair_rooms(global_limit: u32, loads: &[Load]) -> Vec<u32> {
    let claimants: Vec<Claimant> = loads
        .iter()
        .map(|l| Claimant {
            limit: l.limit,
            room: l.limit,
        })
        .collect();
    allocate(global_limit, &claimants)
        .into_iter()
        .zip(loads)
        .map(|(share, l)| share.saturating_sub(l.active))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(limit: u32, room: u32) -> Claimant {
        Claimant { limit, room }
    }

    #[test]
    fn slots_are_shared_in_proportion_to_limits() {
        assert_eq!(allocate(10, &[c(30, 30), c(10, 10)]), vec![8, 2]);
        assert_eq!(
            allocate(12, &[c(10, 100), c(20, 100), c(30, 100)]),
            vec![2, 4, 6]
        );
    }

    #[test]
    fn leftovers_go_to_the_largest_fractional_remainders() {
        // Exact shares 3.33, 3.33, 3.33: floors 3+3+3, one leftover to the first (tie).
        assert_eq!(allocate(10, &[c(1, 10), c(1, 10), c(1, 10)]), vec![4, 3, 3]);
        // Exact 10*5/9 = 5.56 and 10*4/9 = 4.44: floors 5 and 4, leftover to .56.
        assert_eq!(allocate(10, &[c(5, 10), c(4, 10)]), vec![6, 4]);
        // Exact 7 * (2/7, 5/7) = 2, 5: no leftover.
        assert_eq!(allocate(7, &[c(2, 9), c(5, 9)]), vec![2, 5]);
    }

    #[test]
    fn no_organization_gets_more_than_its_room_and_the_rest_goes_to_others() {
        // Shares 5 and 5, but the first has room for 2: the other takes 8.
        assert_eq!(allocate(10, &[c(10, 2), c(10, 20)]), vec![2, 8]);
        assert_eq!(allocate(10, &[c(10, 2), c(10, 3)]), vec![2, 3]);
        assert_eq!(allocate(10, &[c(10, 0)]), vec![0]);
    }

    #[test]
    fn fair_rooms_split_the_global_limit_by_limits_minus_calls_in_progress() {
        let loads = [
            Load {
                limit: 10,
                active: 2,
            },
            Load {
                limit: 20,
                active: 1,
            },
        ];
        // Shares of 6: 2 and 4.
        assert_eq!(fair_rooms(6, &loads), vec![0, 3]);
        // A share above an organization's limit goes to the others.
        let loads = [
            Load {
                limit: 2,
                active: 0,
            },
            Load {
                limit: 20,
                active: 0,
            },
        ];
        assert_eq!(fair_rooms(30, &loads), vec![2, 20]);
        // 10 * 1/21 = 0.48 and 10 * 20/21 = 9.52: the leftover goes to the larger remainder.
        let loads = [
            Load {
                limit: 1,
                active: 0,
            },
            Load {
                limit: 20,
                active: 0,
            },
        ];
        assert_eq!(fair_rooms(10, &loads), vec![0, 10]);
        // Over its share: no room in the first pass.
        assert_eq!(
            fair_rooms(
                6,
                &[
                    Load {
                        limit: 10,
                        active: 5
                    },
                    Load {
                        limit: 20,
                        active: 0
                    }
                ]
            ),
            vec![0, 4]
        );
    }

    #[test]
    fn nothing_is_given_when_nothing_is_free_or_nobody_asks() {
        assert_eq!(allocate(0, &[c(10, 10)]), vec![0]);
        assert_eq!(allocate(5, &[]), Vec::<u32>::new());
    }

    #[test]
    fn the_total_handed_out_never_exceeds_the_free_slots() {
        for free in 0..40 {
            let claimants = [c(3, 7), c(11, 13), c(5, 2), c(1, 40)];
            let given = allocate(free, &claimants);
            let total: u32 = given.iter().sum();
            let room: u32 = claimants.iter().map(|c| c.room).sum();
            assert_eq!(total, free.min(room), "free={free} given={given:?}");
            assert!(given.iter().zip(&claimants).all(|(g, c)| *g <= c.room));
        }
    }
}
