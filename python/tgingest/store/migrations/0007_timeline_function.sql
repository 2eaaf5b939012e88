-- A timeline page in one round trip. The page reads one monthly partition at a time (0006): the
-- month's bounds must be literals for the planner to keep that partition only, so they are
-- known only once the position is; done from the client that is two or three statements per
-- page (the position, the page, the next older month when the page runs over). Here the
-- server does them: the position from message_keys (or the newest day), then each month's page
-- by EXECUTE with its bounds as literals, walking older months through chat_daily_stats.
--
-- p_before: a message id (exclusive); an id that is not stored pages from the nearest stored one
-- below it. p_before_date: its date when the caller knows it (a key's date never changes).
CREATE OR REPLACE FUNCTION tgingest_timeline(
    p_chat bigint, p_before bigint, p_limit integer, p_before_date timestamptz DEFAULT NULL
) RETURNS SETOF messages LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_date  timestamptz := p_before_date;
    v_id    bigint := p_before;
    v_day   date;
    v_month date;
    v_left  integer := p_limit;
    v_got   integer;
BEGIN
    IF p_before IS NOT NULL AND p_before_date IS NULL THEN
        SELECT k.date, k.message_id INTO v_date, v_id FROM message_keys k
        WHERE k.chat_id = p_chat AND k.message_id <= p_before
        ORDER BY k.message_id DESC LIMIT 1;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF v_id <> p_before THEN
            v_id := v_id + 1;  -- the nearest stored id is itself part of the page
        END IF;
    END IF;
    IF v_date IS NOT NULL THEN
        v_day := (v_date AT TIME ZONE 'UTC')::date;
    ELSE
        SELECT max(d.day) INTO v_day FROM chat_daily_stats d WHERE d.chat_id = p_chat;
    END IF;
    WHILE v_day IS NOT NULL AND v_left > 0 LOOP
        v_month := date_trunc('month', v_day)::date;
        RETURN QUERY EXECUTE format(
            'SELECT * FROM messages WHERE chat_id = $1 AND date >= %L AND date < %L %s '
            'ORDER BY date DESC, message_id DESC LIMIT $4',
            to_char(v_month, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(v_month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00',
            CASE WHEN v_date IS NULL THEN '' ELSE 'AND (date, message_id) < ($2, $3)' END)
        USING p_chat, v_date, v_id, v_left;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_left := v_left - v_got;
        IF v_left > 0 THEN
            SELECT max(d.day) INTO v_day FROM chat_daily_stats d
            WHERE d.chat_id = p_chat AND d.day < v_month;
        END IF;
    END LOOP;
END
$$;
