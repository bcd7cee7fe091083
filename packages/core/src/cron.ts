import { createHash } from "node:crypto";
import { BerthError } from "./errors.js";

/**
 * Standard 5-field cron schedules (minute hour day-of-month month day-of-week) in the local time zone:
 * `*`, lists, ranges, steps, month and weekday names, and the `@hourly`-style macros. As in Vixie cron,
 * when both day fields are restricted a time matches if EITHER matches.
 */
export interface CronSchedule {
  source: string;
  minutes: Set<number>;
  hours: Set<number>;
  daysOfMonth: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>;
  dayOfMonthRestricted: boolean;
  dayOfWeekRestricted: boolean;
}

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

const MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

interface FieldSpec {
  name: string;
  minimum: number;
  maximum: number;
  names?: string[];
  namesStartAt?: number;
}

const FIELDS: FieldSpec[] = [
  { name: "minute", minimum: 0, maximum: 59 },
  { name: "hour", minimum: 0, maximum: 23 },
  { name: "day of month", minimum: 1, maximum: 31 },
  { name: "month", minimum: 1, maximum: 12, names: MONTH_NAMES, namesStartAt: 1 },
  { name: "day of week", minimum: 0, maximum: 7, names: DAY_NAMES, namesStartAt: 0 },
];

export function parseCronSchedule(text: string): CronSchedule {
  const source = text.trim();
  const expanded = MACROS[source.toLowerCase()] ?? source;
  const parts = expanded.split(/\s+/);
  const fail = (why: string): never => {
    throw new BerthError("APP_JSON_INVALID", `Invalid cron schedule ${JSON.stringify(source)}: ${why}`, {
      details: { schedule: source },
    });
  };
  if (parts.length !== 5)
    fail("use 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily.");
  const sets = parts.map((part, index) => parseField(part, FIELDS[index] as FieldSpec, fail));
  const daysOfWeek = sets[4] as Set<number>;
  if (daysOfWeek.has(7)) {
    daysOfWeek.delete(7);
    daysOfWeek.add(0);
  }
  return {
    source,
    minutes: sets[0] as Set<number>,
    hours: sets[1] as Set<number>,
    daysOfMonth: sets[2] as Set<number>,
    months: sets[3] as Set<number>,
    daysOfWeek,
    dayOfMonthRestricted: !(parts[2] ?? "").startsWith("*"),
    dayOfWeekRestricted: !(parts[4] ?? "").startsWith("*"),
  };
}

function parseField(text: string, spec: FieldSpec, fail: (why: string) => never): Set<number> {
  const values = new Set<number>();
  const value = (token: string): number => {
    const named = spec.names?.indexOf(token.toLowerCase()) ?? -1;
    if (named !== -1) return named + (spec.namesStartAt ?? 0);
    if (!/^[0-9]{1,2}$/.test(token)) fail(`${JSON.stringify(token)} is not a valid ${spec.name}.`);
    const number = Number(token);
    if (number < spec.minimum || number > spec.maximum) {
      fail(`${spec.name} ${number} is outside ${spec.minimum}-${spec.maximum}.`);
    }
    return number;
  };
  for (const item of text.split(",")) {
    const [range = "", stepText] = item.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1 || (stepText !== undefined && !/^[0-9]+$/.test(stepText))) {
      fail(`step ${JSON.stringify(stepText)} of the ${spec.name} field must be a positive whole number.`);
    }
    let start: number;
    let end: number;
    if (range === "*") {
      start = spec.minimum;
      end = spec.name === "day of week" ? 6 : spec.maximum;
    } else if (range.includes("-")) {
      const [from = "", to = ""] = range.split("-");
      start = value(from);
      end = value(to);
      if (end < start) fail(`range ${range} of the ${spec.name} field runs backwards.`);
    } else {
      start = value(range);
      end = stepText === undefined ? start : spec.maximum;
    }
    for (let current = start; current <= end; current += step) values.add(current);
  }
  return values;
}

export function cronMatches(schedule: CronSchedule, date: Date): boolean {
  if (!schedule.minutes.has(date.getMinutes()) || !schedule.hours.has(date.getHours())) return false;
  if (!schedule.months.has(date.getMonth() + 1)) return false;
  const dayOfMonth = schedule.daysOfMonth.has(date.getDate());
  const dayOfWeek = schedule.daysOfWeek.has(date.getDay());
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) return dayOfMonth || dayOfWeek;
  return dayOfMonth && dayOfWeek;
}

/** The first minute strictly after `after` that matches, searching up to five years ahead. */
export function nextCronTime(schedule: CronSchedule, after: Date): Date | undefined {
  const candidate = new Date(after.getTime());
  candidate.setSeconds(0, 0);
  candidate.setMinutes(candidate.getMinutes() + 1);
  const limit = after.getTime() + 5 * 366 * 24 * 3600 * 1000;
  while (candidate.getTime() <= limit) {
    if (!schedule.months.has(candidate.getMonth() + 1)) {
      candidate.setMonth(candidate.getMonth() + 1, 1);
      candidate.setHours(0, 0, 0, 0);
      continue;
    }
    if (cronMatches(schedule, candidate)) return candidate;
    if (!schedule.hours.has(candidate.getHours())) {
      candidate.setHours(candidate.getHours() + 1, 0, 0, 0);
      continue;
    }
    candidate.setMinutes(candidate.getMinutes() + 1);
  }
  return undefined;
}

/** A stable id for an app.json cron entry, so `cron:run ID` keeps working across deploys that keep the entry. */
export function cronEntryId(schedule: string, command: string): string {
  return createHash("sha256").update(`${schedule}\n${command}`).digest("hex").slice(0, 10);
}
