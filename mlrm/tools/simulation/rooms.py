"""Indoor air of rooms, simulated in 5-minute steps, for the air-quality scenario.

CO2 follows a mass balance: every person breathes out about 0.018 m³ of CO2
an hour, ventilation exchanges the room's air with outdoor air (420 ppm) at
`air_changes_per_h`. Offices fill in meetings on workdays; the HVAC runs
from 7:00 to 19:00 on workdays, otherwise only infiltration (0.3 changes an
hour) is left. Temperature and humidity rise with the people in the room.

The forecast asks: what will CO2 be one hour from now, given the readings
now, how they changed over the last 15 and 60 minutes, and how many people
the room's booking calendar expects in the next hour?
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

STEP_MIN = 5
OUTDOOR_CO2 = 420.0
CO2_PER_PERSON_M3_H = 0.018
INFILTRATION = 0.3
HORIZON_STEPS = 60 // STEP_MIN
HISTORY_STEPS = 60 // STEP_MIN  # readings back to compute the 60-minute delta

AIR_FEATURES = [
    "co2_ppm", "co2_delta_15m_ppm", "co2_delta_60m_ppm", "temperature_c", "humidity_pct",
    "occupancy", "occupancy_delta_15m", "booked_next_hour", "hour_of_day", "workday", "ventilation_on",
]  # fmt: skip
AIR_TARGET = "co2_next_hour_ppm"


class Room:
    """One room: call step() for the next 5-minute reading.

    `ventilation` scales the HVAC's air changes (1.0 as designed; 0.4 is a
    clogged filter): the drift the air-quality example retrains for.
    `shift_calibration` makes the CO2 sensor read high by a growing offset
    (an NDIR sensor's baseline drifts as its lamp ages): the drift the
    drift example's monitors detect (docs/drift.md).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        volume_m3: float = 60.0,
        air_changes_per_h: float = 3.0,
        capacity: int = 8,
        ventilation: float = 1.0,
        start_day: int = 0,
    ) -> None:
        self.rng = rng
        self.volume, self.ach, self.capacity = volume_m3, air_changes_per_h, capacity
        self.ventilation = ventilation
        self.minute = start_day * 24 * 60
        self.co2 = OUTDOOR_CO2 + rng.uniform(0, 80)
        self.temperature = 20.0 + rng.normal(0, 0.5)
        self.humidity = 40.0 + rng.normal(0, 3)
        self.occupancy = 0
        # The CO2 sensor's calibration: reads offset_ppm high, growing by ppm_per_step up to its end value.
        self.offset_ppm, self._offset_end, self._offset_per_step = 0.0, 0.0, 0.0
        # Meetings of the day: (start hour, length in quarter hours, people), redrawn each day.
        self._day = -1
        self._meetings: list[tuple[float, int, int]] = []

    def shift_calibration(self, ppm: float, over_hours: float) -> None:
        """From now on the sensor's reading drifts by ppm more, linearly over that many simulated hours."""
        self._offset_end = self.offset_ppm + ppm
        self._offset_per_step = ppm / max(over_hours * 60 / STEP_MIN, 1)

    def _plan_day(self, day: int) -> None:
        self._day = day
        self._meetings = []
        if day % 7 >= 5:  # weekend: the odd visit
            if self.rng.random() < 0.2:
                self._meetings.append((float(self.rng.integers(9, 16)), int(self.rng.integers(2, 6)), 1))
            return
        for hour in range(8, 18):
            busy = 0.75 if hour in (9, 10, 11, 14, 15) else 0.35
            if self.rng.random() < busy:
                people = int(self.rng.integers(1, self.capacity + 1))
                start = hour + float(self.rng.choice([0, 0.25, 0.5]))
                self._meetings.append((start, int(self.rng.integers(2, 5)), people))

    def _people(self, hour: float) -> int:
        count = 0
        for start, quarters, people in self._meetings:
            if start <= hour < start + quarters / 4:
                count = max(count, people)
        return count

    def _booked(self, hour: float) -> float:
        """Person-hours the calendar books in the next hour (4 people for half
        an hour: 2.0). Who really comes differs by a person now and then."""
        booked = 0.0
        for start, quarters, people in self._meetings:
            overlap = min(start + quarters / 4, hour + 1) - max(start, hour)
            if overlap > 0:
                booked += overlap * max(people + int(self.rng.integers(-1, 2)), 0)
        return round(booked, 2)

    def step(self) -> dict[str, Any]:
        """Advance 5 minutes; the reading a sensor in the room reports."""
        day, minute_of_day = divmod(self.minute, 24 * 60)
        if day != self._day:
            self._plan_day(day)
        hour = minute_of_day / 60
        workday = day % 7 < 5
        ventilation_on = workday and 7 <= hour < 19
        self.occupancy = self._people(hour)
        ach = (self.ach * self.ventilation if ventilation_on else 0) + INFILTRATION
        dt = STEP_MIN / 60
        source = self.occupancy * CO2_PER_PERSON_M3_H / self.volume * 1e6
        # Exact solution of dC/dt = source - ach (C - outdoor) over the step: stable at any ach.
        steady = OUTDOOR_CO2 + source / ach
        self.co2 = steady + (self.co2 - steady) * np.exp(-ach * dt) + self.rng.normal(0, 2)
        target_temp = (21.5 if ventilation_on else 19.0) + 0.15 * self.occupancy
        self.temperature += (target_temp - self.temperature) * 0.15 + self.rng.normal(0, 0.05)
        target_humidity = 38 + 0.9 * self.occupancy
        self.humidity += (target_humidity - self.humidity) * 0.1 + self.rng.normal(0, 0.3)
        self.minute += STEP_MIN
        if self._offset_per_step:
            grown = self.offset_ppm + self._offset_per_step
            self.offset_ppm = (
                min(grown, self._offset_end) if self._offset_per_step > 0 else max(grown, self._offset_end)
            )
        return {
            "minute": self.minute - STEP_MIN,
            # NDIR sensor noise, and its calibration's offset
            "co2_ppm": round(float(self.co2 + self.offset_ppm + self.rng.normal(0, 8)), 1),
            "temperature_c": round(float(self.temperature), 2),
            "humidity_pct": round(float(np.clip(self.humidity, 0, 100)), 1),
            "occupancy": int(self.occupancy),
            "booked_next_hour": self._booked(hour),
            "hour_of_day": round(hour, 3),
            "workday": bool(workday),
            "ventilation_on": bool(ventilation_on),
        }


def air_features(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The forecast's inputs from the last readings (oldest first), or None
    until an hour of history is there."""
    if len(history) <= HISTORY_STEPS:
        return None
    now, q_ago, h_ago = history[-1], history[-1 - 15 // STEP_MIN], history[-1 - HISTORY_STEPS]
    return {
        "co2_ppm": now["co2_ppm"],
        "co2_delta_15m_ppm": round(now["co2_ppm"] - q_ago["co2_ppm"], 1),
        "co2_delta_60m_ppm": round(now["co2_ppm"] - h_ago["co2_ppm"], 1),
        "temperature_c": now["temperature_c"],
        "humidity_pct": now["humidity_pct"],
        "occupancy": now["occupancy"],
        "occupancy_delta_15m": now["occupancy"] - q_ago["occupancy"],
        "booked_next_hour": now["booked_next_hour"],
        "hour_of_day": now["hour_of_day"],
        "workday": now["workday"],
        "ventilation_on": now["ventilation_on"],
    }


def air_quality(rows: int = 2000, seed: int = 7, ventilation: float = 1.0) -> list[dict[str, Any]]:
    """Labelled forecast rows from four meeting rooms of one design: the
    inputs now and the CO2 measured one hour later (`co2_next_hour_ppm`)."""
    rng = np.random.default_rng(seed)
    rooms = [
        Room(
            rng,
            volume_m3=float(rng.normal(60, 3)),
            air_changes_per_h=float(rng.normal(3.0, 0.15)),
            ventilation=ventilation,
            start_day=int(rng.integers(0, 7)),
        )
        for _ in range(4)
    ]
    stride = 3  # every 15 minutes: neighbouring rows would be near copies
    per_room = -(-rows // len(rooms))
    out: list[dict[str, Any]] = []
    for room in rooms:
        readings = [room.step() for _ in range(per_room * stride + HISTORY_STEPS + HORIZON_STEPS + 1)]
        for i in list(range(HISTORY_STEPS, len(readings) - HORIZON_STEPS, stride))[:per_room]:
            features = air_features(readings[i - HISTORY_STEPS : i + 1])
            assert features is not None
            features[AIR_TARGET] = readings[i + HORIZON_STEPS]["co2_ppm"]
            out.append(features)
    return out[:rows]
