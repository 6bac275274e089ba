//! Dates of Unix times, in UTC (the proleptic Gregorian calendar): for the log's dates and for
//! zip entries' DOS times, which carry a date and a time and no time zone.

/// The date and time of `unix` seconds: (year, month, day, hour, minute, second).
pub fn civil(unix: i64) -> (i64, u8, u8, u8, u8, u8) {
    let days = unix.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u8;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let secs = unix.rem_euclid(86_400);
    (
        year,
        month,
        day,
        (secs / 3600) as u8,
        (secs / 60 % 60) as u8,
        (secs % 60) as u8,
    )
}

/// The Unix time of a date and time (the inverse of [`civil`]).
pub fn unix(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_go_both_ways_across_leap_days_and_centuries() {
        for (time, date) in [
            (0, (1970, 1, 1, 0, 0, 0)),
            (1_709_164_800, (2024, 2, 29, 0, 0, 0)),
            (1_796_598_307, (2026, 12, 6, 23, 5, 7)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
        ] {
            assert_eq!(civil(time), date, "{time}");
            let (y, mo, d, h, mi, s) = date;
            assert_eq!(unix(y, mo, d, h, mi, s), time);
        }
    }
}
