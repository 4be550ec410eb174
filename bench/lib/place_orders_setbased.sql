-- PROTOTYPE for a measurement (bench/lib/place_prototype.py), not used by the exchange:
-- cx_place_orders rewritten so that the number of SQL statements per call does not grow
-- with the number of orders. Same arguments, same result rows and codes, same rows written
-- (one order, one hold journal with 2 legs per bid, one inbox command each), same lock order.
--
-- 1. make and lock the accounts and capacity positions (as now);
-- 2. read every fact the checks need in a few set queries over unnest(the arguments):
--    token, organisation, instrument, fee rate, an existing order with the same
--    client_order_id, the first order of the batch with the same one, the available balance
--    of each buyer, the sellable capacity of each (seller, instrument);
-- 3. decide each order in a loop over arrays only (running balances and capacities: no SQL
--    inside the loop);
-- 4. write with one statement per table (ids taken from the sequences beforehand, so the
--    inbox keeps the input order), and one UPDATE for all balances and one for all positions.

CREATE OR REPLACE FUNCTION cx_place_orders_setbased(
    p_token bigint[], p_org bigint[], p_user bigint[], p_instrument bigint[],
    p_client_id text[], p_side text[], p_type text[], p_tif text[], p_post_only boolean[],
    p_price bigint[], p_qty bigint[], p_expires timestamptz[], p_protect bigint[]
) RETURNS TABLE (idx int, order_id bigint, code text)
LANGUAGE plpgsql
-- The set queries below join several tables: re-planning them on every call (PL/pgSQL's
-- custom plans for parameters) costs more than running them.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n int := coalesce(array_length(p_org, 1), 0);
    i int;
    k int;
    v_now timestamptz := now();
    v_default_bps bigint;
    -- per order, read in step 2
    f_token_state text[];   -- NULL ok, 'revoked', 'expired'
    f_kyc text[];
    f_owner bigint[];
    f_state text[];
    f_gate timestamptz[];
    f_ref bigint[];
    f_band bigint[];
    f_bps bigint[];
    f_existing bigint[];    -- id of an order already stored with this (organisation, client_order_id)
    f_first int[];          -- first index in this batch with the same (organisation, client_order_id)
    f_cap_key int[];        -- index into the capacity arrays (sells)
    f_acct_key int[];       -- index into the account arrays (buys)
    -- per buying organisation
    a_org bigint[];
    a_avail_id bigint[];
    a_held_id bigint[];
    a_balance bigint[];
    a_delta bigint[];
    -- per (seller, instrument)
    c_pos_id bigint[];
    c_free bigint[];
    c_delta bigint[];
    -- outcome per order
    o_code text[] := array_fill(NULL::text, ARRAY[n]);
    o_id bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    o_hold bigint[] := array_fill(0::bigint, ARRAY[n]);
    o_per_lot bigint[] := array_fill(0::bigint, ARRAY[n]);
    o_accepted_in_group bigint[] := array_fill(NULL::bigint, ARRAY[n]);  -- by first index
    v_hold_price bigint;
    v_per_lot bigint;
    v_hold bigint;
    v_accepted int[] := '{}';
    v_journal_of int[] := '{}';
    v_ids bigint[];
    v_journal_ids bigint[];
    v_seqs bigint[];
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    -- 1. Accounts and positions exist, then are locked in id order (as cx_place_orders does).
    INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance)
    SELECT DISTINCT o, kd, 0 FROM unnest(p_org, p_side) AS t(o, s), (VALUES ('available'), ('held')) AS kinds(kd)
    WHERE t.s = 'buy'
    ON CONFLICT DO NOTHING;
    INSERT INTO exchange_capacityposition (organisation_id, instrument_id, held, sold, bought)
    SELECT DISTINCT o, ins, 0, 0, 0 FROM unnest(p_org, p_instrument, p_side) AS t(o, ins, s)
    WHERE t.s = 'sell'
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM exchange_ledgeraccount a
    WHERE a.organisation_id IN (SELECT o FROM unnest(p_org, p_side) AS t(o, s) WHERE t.s = 'buy')
      AND a.kind IN ('available', 'held')
    ORDER BY a.id FOR UPDATE;
    PERFORM 1 FROM exchange_capacityposition c
    WHERE (c.organisation_id, c.instrument_id) IN (
        SELECT o, ins FROM unnest(p_org, p_instrument, p_side) AS t(o, ins, s) WHERE t.s = 'sell')
    ORDER BY c.id FOR UPDATE;

    -- 2. The facts, in a few set queries.
    SELECT COALESCE((SELECT f.taker_bps FROM exchange_feetier f WHERE f.is_default), 0) INTO v_default_bps;
    SELECT array_agg(CASE WHEN t.tok IS NULL THEN NULL
                          WHEN tk.id IS NULL OR tk.revoked_at IS NOT NULL THEN 'revoked'
                          WHEN tk.expires_at IS NOT NULL AND tk.expires_at <= v_now THEN 'expired' END ORDER BY t.i),
           array_agg(o.kyc_status ORDER BY t.i), array_agg(o.beneficial_owner_id ORDER BY t.i),
           array_agg(s.state ORDER BY t.i), array_agg(s.gate_closure_at ORDER BY t.i),
           array_agg(s.reference_price_fen ORDER BY t.i), array_agg(s.band_bps ORDER BY t.i),
           array_agg(COALESCE(ft.taker_bps, v_default_bps) ORDER BY t.i),
           array_agg(d.id ORDER BY t.i),
           array_agg(t.first_i ORDER BY t.i)
    INTO f_token_state, f_kyc, f_owner, f_state, f_gate, f_ref, f_band, f_bps, f_existing, f_first
    FROM (SELECT u.*, min(u.i) OVER (PARTITION BY u.org, u.cid)::int AS first_i
          FROM unnest(p_token, p_org, p_instrument, p_client_id) WITH ORDINALITY AS u(tok, org, ins, cid, i)) t
    LEFT JOIN accounts_apitoken tk ON tk.id = t.tok
    LEFT JOIN accounts_organisation o ON o.id = t.org
    LEFT JOIN exchange_instrument s ON s.id = t.ins
    LEFT JOIN exchange_membertier m ON m.organisation_id = t.org
    LEFT JOIN exchange_feetier ft ON ft.id = m.tier_id
    -- LATERAL keeps this an index lookup per order (a join planned for unnest's default 100
    -- rows may hash the whole order table).
    LEFT JOIN LATERAL (SELECT x.id FROM exchange_order x
                       WHERE x.organisation_id = t.org AND x.client_order_id = t.cid) d ON true;

    SELECT array_agg(av.organisation_id ORDER BY av.organisation_id), array_agg(av.id ORDER BY av.organisation_id),
           array_agg(hd.id ORDER BY av.organisation_id), array_agg(av.balance ORDER BY av.organisation_id)
    INTO a_org, a_avail_id, a_held_id, a_balance
    FROM exchange_ledgeraccount av
    JOIN exchange_ledgeraccount hd ON hd.organisation_id = av.organisation_id AND hd.kind = 'held'
    WHERE av.kind = 'available'
      AND av.organisation_id IN (SELECT o FROM unnest(p_org, p_side) AS t(o, s) WHERE t.s = 'buy');
    a_delta := array_fill(0::bigint, ARRAY[coalesce(array_length(a_org, 1), 0)]);

    -- Sellable capacity per (seller, instrument): listed + bought - sold - held.
    SELECT array_agg(x.key_i ORDER BY x.i) INTO f_cap_key
    FROM (SELECT u.i, dense_rank() OVER (ORDER BY u.org, u.ins)::int AS key_i
          FROM unnest(p_org, p_instrument) WITH ORDINALITY AS u(org, ins, i)) x;
    SELECT array_agg(c.id ORDER BY k.key_i),
           array_agg(COALESCE((SELECT SUM(lp.scu_h) FROM marketplace_listingperiod lp
                               WHERE lp.provider_id = k.org AND lp.compute_class_id = s.compute_class_id
                                 AND lp.hub_id = s.hub_id AND lp.period_start = s.delivery_start), 0)::bigint
                     + COALESCE(c.bought, 0) - COALESCE(c.sold, 0) - COALESCE(c.held, 0) ORDER BY k.key_i)
    INTO c_pos_id, c_free
    FROM (SELECT DISTINCT u.org, u.ins, dense_rank() OVER (ORDER BY u.org, u.ins)::int AS key_i
          FROM unnest(p_org, p_instrument) AS u(org, ins)) k
    LEFT JOIN exchange_instrument s ON s.id = k.ins
    LEFT JOIN exchange_capacityposition c ON c.organisation_id = k.org AND c.instrument_id = k.ins;
    c_delta := array_fill(0::bigint, ARRAY[coalesce(array_length(c_pos_id, 1), 0)]);

    -- 3. Decide each order in sequence (running balances; no SQL in the loop).
    FOR i IN 1..n LOOP
        IF f_token_state[i] = 'revoked' THEN o_code[i] := 'token_revoked'; CONTINUE; END IF;
        IF f_token_state[i] = 'expired' THEN o_code[i] := 'token_expired'; CONTINUE; END IF;
        IF f_kyc[i] = 'suspended' THEN o_code[i] := 'organisation_suspended'; CONTINUE;
        ELSIF f_kyc[i] IS DISTINCT FROM 'verified' THEN o_code[i] := 'kyc_pending'; CONTINUE;
        END IF;
        IF f_existing[i] IS NOT NULL THEN o_id[i] := f_existing[i]; o_code[i] := 'duplicate'; CONTINUE; END IF;
        IF o_accepted_in_group[f_first[i]] IS NOT NULL THEN
            o_id[i] := o_accepted_in_group[f_first[i]]; o_code[i] := 'duplicate'; CONTINUE;  -- id filled in step 4
        END IF;
        IF f_state[i] = 'halted' THEN o_code[i] := 'instrument_halted'; CONTINUE;
        ELSIF f_state[i] = 'closed' OR f_gate[i] <= v_now THEN o_code[i] := 'gate_closed'; CONTINUE;
        END IF;
        IF p_type[i] = 'market' THEN
            IF f_state[i] <> 'continuous' THEN o_code[i] := 'auction_in_progress'; CONTINUE;
            ELSIF f_ref[i] IS NULL THEN o_code[i] := 'no_reference_price'; CONTINUE;
            END IF;
            v_hold_price := f_ref[i] + (f_ref[i] * f_band[i] + 9999) / 10000;
        ELSE
            v_hold_price := p_price[i];
        END IF;
        IF p_side[i] = 'buy' THEN
            v_per_lot := v_hold_price + (v_hold_price * f_bps[i] + 9999) / 10000;
            v_hold := v_per_lot * p_qty[i];
            k := array_position(a_org, p_org[i]);
            IF a_balance[k] < v_hold THEN o_code[i] := 'insufficient_funds'; CONTINUE; END IF;
            a_balance[k] := a_balance[k] - v_hold;
            a_delta[k] := a_delta[k] + v_hold;
            o_hold[i] := v_hold;
            o_per_lot[i] := v_per_lot;
            IF v_hold > 0 THEN v_journal_of := v_journal_of || i; END IF;
        ELSE
            k := f_cap_key[i];
            IF c_free[k] < p_qty[i] THEN o_code[i] := 'insufficient_capacity'; CONTINUE; END IF;
            c_free[k] := c_free[k] - p_qty[i];
            c_delta[k] := c_delta[k] + p_qty[i];
        END IF;
        o_code[i] := 'accepted';
        o_accepted_in_group[f_first[i]] := -i;  -- a marker: the order index, replaced by its id below
        v_accepted := v_accepted || i;
    END LOOP;

    -- 4. Write: ids from the sequences first, then one statement per table.
    k := coalesce(array_length(v_accepted, 1), 0);
    IF k > 0 THEN
        SELECT array_agg(nextval(pg_get_serial_sequence('exchange_order', 'id'))) INTO v_ids FROM generate_series(1, k);
        SELECT array_agg(nextval(pg_get_serial_sequence('exchange_inboxcommand', 'seq'))) INTO v_seqs FROM generate_series(1, k);
        FOR i IN 1..k LOOP
            o_id[v_accepted[i]] := v_ids[i];
        END LOOP;
        INSERT INTO exchange_order (
            id, instrument_id, organisation_id, owner_id, user_id, client_order_id, side, type, tif,
            post_only, price_fen, qty, remaining, filled, expires_at, protect_ticks, held_fen,
            hold_per_lot_fen, status, reason, priority_seq, created_at, updated_at)
        SELECT o_id[j], p_instrument[j], p_org[j], f_owner[j], p_user[j], p_client_id[j], p_side[j], p_type[j], p_tif[j],
               p_post_only[j], p_price[j], p_qty[j], p_qty[j], 0, p_expires[j], p_protect[j], o_hold[j], o_per_lot[j],
               'accepted', '', 0, v_now, v_now
        FROM unnest(v_accepted) AS a(j);
        IF coalesce(array_length(v_journal_of, 1), 0) > 0 THEN
            SELECT array_agg(nextval(pg_get_serial_sequence('exchange_journal', 'id')))
            INTO v_journal_ids FROM unnest(v_journal_of);
            INSERT INTO exchange_journal (id, kind, order_id, memo, created_at)
            SELECT jid, 'hold', o_id[j], '', v_now FROM unnest(v_journal_ids, v_journal_of) AS x(jid, j);
            INSERT INTO exchange_ledgerleg (journal_id, account_id, amount_fen)
            SELECT jid, CASE WHEN leg = 1 THEN a_avail_id[array_position(a_org, p_org[j])]
                             ELSE a_held_id[array_position(a_org, p_org[j])] END,
                   CASE WHEN leg = 1 THEN -o_hold[j] ELSE o_hold[j] END
            FROM unnest(v_journal_ids, v_journal_of) AS x(jid, j), (VALUES (1), (2)) AS legs(leg);
        END IF;
        INSERT INTO exchange_inboxcommand (seq, instrument_id, action, order_id, extra_hold_fen, created_at)
        SELECT v_seqs[r], p_instrument[j], 'new', o_id[j], 0, v_now
        FROM unnest(v_accepted) WITH ORDINALITY AS a(j, r);
        UPDATE exchange_ledgeraccount a SET balance = a.balance + d.delta
        FROM (SELECT unnest(a_avail_id || a_held_id) AS id,
                     unnest(array(SELECT -x FROM unnest(a_delta) AS x) || a_delta) AS delta) d
        WHERE a.id = d.id AND d.delta <> 0;
        UPDATE exchange_capacityposition c SET held = c.held + d.delta
        FROM unnest(c_pos_id, c_delta) AS d(id, delta)
        WHERE c.id = d.id AND d.delta <> 0;
    END IF;
    -- Duplicates of an order accepted earlier in this batch take its id.
    FOR i IN 1..n LOOP
        IF o_code[i] = 'duplicate' AND o_id[i] < 0 THEN
            o_id[i] := o_id[-o_id[i]];
        END IF;
    END LOOP;
    PERFORM pg_notify('cx_inbox', '');
    RETURN QUERY SELECT (g - 1)::int, o_id[g], o_code[g] FROM generate_series(1, n) AS g;
END;
$$;
