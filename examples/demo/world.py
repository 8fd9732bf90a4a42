"""
world.py -- the simulated last-mile delivery platform of the mlma demo.

Draws, from one seed, the order counts of every delivery zone in 15-minute
slots: a zone-specific daily profile (breakfast, lunch and dinner peaks over a
daytime plateau), weekly seasonality (busier Friday and Saturday evenings,
quieter weekday lunches in residential zones, empty business districts at the
weekend), a little day-to-day variation and Poisson noise.  A share of the
zones gets one break at a random 15-minute slot of the monitored period:

  competitor    a new competitor opens nearby: level x 0.55..0.75, for good
  road_closure  roadworks cut off part of the zone: level x 0.45..0.65 for
                4..8 days, then back to normal
  profile       the daily profile changes (an office campus opens or closes):
                lunch and dinner peaks change weight, same daily volume
  drop          the zone loses most of its restaurants or its courier hub:
                level x 0.15..0.35, for good

Everything is numpy arrays; simulate.py loads them into PostgreSQL.
"""

import numpy as np

SLOTS = 96              # 15-minute slots per day
HISTORY_DAYS = 15       # order history before go-live (the first fit needs 15)
BREAK_KINDS = ("competitor", "road_closure", "profile", "drop")
BREAK_SHARES = (0.35, 0.20, 0.25, 0.20)

# weekday volume factors, Monday first
WEEKDAY_VOLUME = np.array([0.90, 0.92, 0.95, 1.00, 1.15, 1.22, 1.05])


def _bump(hours, centre, width):
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def _day_shapes(hours, w_breakfast, w_lunch, w_dinner, w_plateau, business,
                dinner_shift=0.0):
    """Normalized daily profiles (7 weekdays x SLOTS) of one zone."""
    plateau = 1.0 / (1.0 + np.exp(-(hours - 7.5) * 2.0)) \
        / (1.0 + np.exp((hours - 23.0) * 2.0))
    shapes = np.empty((7, SLOTS))
    for wd in range(7):
        weekend = wd >= 5
        lunch = w_lunch * ((1.0 - 0.75 * business) if weekend
                           else (1.0 + 0.3 * business))
        if weekend:
            lunch *= 1.25 if wd == 6 else 1.0   # Sunday lunch at home
        dinner = w_dinner * (1.25 if wd in (4, 5) else 1.0)
        breakfast = w_breakfast * (1.4 if wd == 6 else 1.0)
        bcentre = 10.0 if weekend else 8.25
        s = (0.02
             + w_plateau * plateau
             + breakfast * _bump(hours, bcentre, 0.9)
             + lunch * _bump(hours, 12.5, 1.0)
             + dinner * _bump(hours, 19.25 + dinner_shift, 1.4))
        shapes[wd] = s / s.sum()
    return shapes


def generate(zones=300, days=28, broken_share=0.30, seed=20240304):
    """
    Returns a dict:
      orders   int array (zones, HISTORY_DAYS + days, SLOTS)
      lam      float array, the true expected counts, same shape
      zone_kind, base   per zone
      breaks   list of (zone index, kind, start slot, end slot or None, factor)
               slots counted from the start of the monitored period
    Day 0 of the arrays is HISTORY_DAYS days before go-live, a Monday minus
    HISTORY_DAYS days; the caller maps days to dates.
    """
    rng = np.random.default_rng(seed)
    total_days = HISTORY_DAYS + days
    hours = (np.arange(SLOTS) + 0.5) / 4.0

    base = np.exp(rng.normal(np.log(420.0), 0.55, zones))   # orders per day
    business = rng.beta(1.3, 2.2, zones)   # 0 residential .. 1 business
    kind = np.where(business > 0.6, "business",
                    np.where(business < 0.3, "residential", "mixed"))
    w_breakfast = rng.uniform(0.05, 0.35, zones)
    w_lunch = rng.uniform(0.3, 0.8, zones) + 0.8 * business
    w_dinner = rng.uniform(0.6, 1.3, zones) * (1.2 - 0.6 * business)
    w_plateau = rng.uniform(0.15, 0.35, zones)

    # the weekday of array day d: go-live is a Monday
    weekday = (np.arange(total_days) - HISTORY_DAYS) % 7

    lam = np.empty((zones, total_days, SLOTS))
    day_noise = np.exp(rng.normal(0.0, 0.04, (zones, total_days)))
    for z in range(zones):
        shapes = _day_shapes(hours, w_breakfast[z], w_lunch[z], w_dinner[z],
                             w_plateau[z], business[z])
        lam[z] = (base[z] * WEEKDAY_VOLUME[weekday][:, None]
                  * shapes[weekday] * day_noise[z][:, None])

    # breaks: a random share of the zones, at a random slot between day 3 and
    # day 21 of the monitored period (or the day before its last)
    n_broken = int(round(broken_share * zones))
    broken = rng.choice(zones, n_broken, replace=False)
    kinds = rng.choice(len(BREAK_KINDS), n_broken, p=BREAK_SHARES)
    breaks = []
    flat = lam.reshape(zones, -1)
    offset = HISTORY_DAYS * SLOTS
    horizon = total_days * SLOTS
    for z, k in zip(broken, kinds):
        name = BREAK_KINDS[k]
        start = int(rng.integers(2 * SLOTS, max(3, min(21, days - 1)) * SLOTS))
        end = None
        if name == "competitor":
            factor = rng.uniform(0.55, 0.75)
            flat[z, offset + start:] *= factor
        elif name == "road_closure":
            factor = rng.uniform(0.45, 0.65)
            end = start + int(rng.integers(4, 9)) * SLOTS
            flat[z, offset + start:offset + min(end, horizon - offset)] *= factor
        elif name == "drop":
            factor = rng.uniform(0.15, 0.35)
            flat[z, offset + start:] *= factor
        else:
            # an office campus opens (lunch x2..3) or closes (lunch x0.3,
            # dinner one hour later); the daily volume stays the same
            opens = rng.random() < 0.5
            factor = rng.uniform(2.0, 3.0) if opens else 0.3
            new = _day_shapes(hours, w_breakfast[z],
                              w_lunch[z] * factor, w_dinner[z],
                              w_plateau[z], business[z],
                              dinner_shift=0.0 if opens else 1.0)
            newlam = (base[z] * WEEKDAY_VOLUME[weekday][:, None]
                      * new[weekday] * day_noise[z][:, None]).reshape(-1)
            flat[z, offset + start:] = newlam[offset + start:]
        breaks.append((int(z), name, start, end, float(factor)))

    orders = rng.poisson(lam)
    return {
        "orders": orders,
        "lam": lam,
        "zone_kind": kind,
        "base": base,
        "breaks": sorted(breaks),
    }


if __name__ == "__main__":
    w = generate()
    o = w["orders"]
    print("shape", o.shape, "total orders", o.sum(),
          "mean per zone-day", o.sum(axis=2).mean())
    for b in w["breaks"][:10]:
        print(b)
