-- Order entry: risk checks, holds and inserts for a batch of orders in one statement.
--
-- Called by exchange.gateway with one array per column (index i = the i-th order).
-- Everything that can change between two orders (the token's revocation, expiry and scopes,
-- its user, its membership's organisation and role, organisation status, instrument state,
-- balances, capacity) is checked here, inside the transaction that writes the order, so any
-- change of access takes effect for the very next order whatever the caller cached.
-- An order placed without a token (a signed-in person) is checked against that person's
-- current membership, the one accounts.selectors.membership_current picks.
--
-- The first pass reads balances and capacity without locking them and decides every
-- order; then, in a subtransaction, it locks and moves the balances and capacity holds it
-- decided — the database refusing any that would overdraw (the accounts' CHECK, the
-- positions' condition) — and writes the orders, their inbox commands and hold journals.
-- So concurrent batches of the same organisations wait on each other only from those
-- moves to their commit. If a balance or position moved meanwhile so that a decision no
-- longer holds, or another batch placed the same client_order_id, the subtransaction is
-- rolled back and the next pass decides again on rows it has locked first. Every pass
-- locks accounts, then positions, in id order, as the engine does: no cycle.
--
-- Result codes: 'accepted', 'duplicate' (client_order_id seen before: the first order is
-- returned), or a rejection code (nothing written for that order). Orders a batch accepts
-- together share one hold journal per organisation; each keeps its share in held_fen.

CREATE OR REPLACE FUNCTION cx_listed_scu_h(p_org bigint, p_class bigint, p_hub bigint, p_period timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(SUM(lp.scu_h), 0)::bigint
    FROM marketplace_listingperiod lp
    WHERE lp.provider_id = p_org AND lp.compute_class_id = p_class
      AND lp.hub_id = p_hub AND lp.period_start = p_period
$$;

-- An accepted order's held_fen and created_at come back with its id, so an edge can
-- answer with the whole order without reading it again. (The result columns changed, and
-- CREATE OR REPLACE cannot change them: the older function is dropped first.)
DROP FUNCTION IF EXISTS cx_place_orders(bigint[], bigint[], bigint[], bigint[], text[], text[], text[], text[],
                                        boolean[], bigint[], bigint[], timestamptz[], bigint[]);
CREATE OR REPLACE FUNCTION cx_place_orders(
    p_token bigint[], p_org bigint[], p_user bigint[], p_instrument bigint[],
    p_client_id text[], p_side text[], p_type text[], p_tif text[], p_post_only boolean[],
    p_price bigint[], p_qty bigint[], p_expires timestamptz[], p_protect bigint[]
) RETURNS TABLE (idx int, order_id bigint, code text, held_fen bigint, created_at timestamptz)
LANGUAGE plpgsql
-- Plans made once per connection: every statement here probes indexes by id or key, and
-- planning them again on every call cost a third of a one-order call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n int := coalesce(array_length(p_org, 1), 0);
    m int;
    i int;
    k int;
    f int;
    r record;
    v_cursor refcursor;
    v_now timestamptz := now();
    v_pass int;
    v_done boolean := false;
    v_rows int;
    -- Credentials, by position in v_tok_id (tokens) or v_usr_id (people without a token):
    -- a refusal that holds whatever the order (NULL: none), the organisation they act for
    -- now, and whether the scopes left by the current role include 'trade'.
    v_tok_id bigint[];
    v_tok_code text[];
    v_tok_org bigint[];
    v_tok_trade boolean[];
    v_usr_id bigint[];
    v_usr_code text[];
    v_usr_org bigint[];
    v_usr_trade boolean[];
    v_cred text;
    -- Organisations, by position in v_org_id.
    v_org_id bigint[];
    v_org_kyc text[];
    v_org_owner bigint[];
    v_org_taker bigint[];
    v_avail_id bigint[];
    v_avail bigint[];
    v_held_id bigint[];
    v_hold_sum bigint[];
    v_hold_count int[];
    v_hold_order bigint[];
    v_journal_id bigint[];
    v_acc_id bigint[];
    v_acc_delta bigint[];
    -- Instruments, by position in v_ins_id.
    v_ins_id bigint[];
    v_ins_state text[];
    v_ins_gate timestamptz[];
    v_ins_ref bigint[];
    v_ins_band bigint[];
    -- Capacity positions, by position in v_pos_key (organisation id << 32 | instrument id).
    v_pos_key bigint[];
    v_pos_id bigint[];
    v_pos_free bigint[];
    v_pos_add bigint[];
    v_pos_changed bigint[];
    v_pos_delta bigint[];
    -- In-batch repeats of a client_order_id: the first index with the same key, and the
    -- index of the one accepted for it.
    v_first int[];
    v_taken int[];
    -- Per order (index i).
    v_code text[];
    v_id bigint[];
    v_owner bigint[];
    v_hold bigint[];
    v_per_lot bigint[];
    v_hold_price bigint;
    v_amount bigint;
    v_seen_n bigint[];
    v_seen_id bigint[];
    v_accepted int;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- A token's effective scopes are its own within its role's (cx_role_scopes is generated
    -- from accounts.services.ROLE_SCOPES); a removed membership takes its tokens with it.
    SELECT coalesce(array_agg(t.id), '{}'),
           array_agg(CASE WHEN t.revoked_at IS NOT NULL THEN 'token_revoked'
                          WHEN t.expires_at <= v_now THEN 'token_expired'
                          WHEN NOT u.is_active THEN 'user_inactive' END),
           array_agg(mb.organisation_id),
           array_agg('trade' = ANY(t.scopes) AND 'trade' = ANY(cx_role_scopes(mb.role)))
    INTO v_tok_id, v_tok_code, v_tok_org, v_tok_trade
    FROM accounts_apitoken t
    JOIN accounts_membership mb ON mb.id = t.membership_id
    JOIN accounts_user u ON u.id = mb.user_id
    WHERE t.id = ANY(p_token);
    IF array_position(p_token, NULL) IS NOT NULL THEN
        SELECT coalesce(array_agg(u.id), '{}'), array_agg(CASE WHEN NOT u.is_active THEN 'user_inactive' END),
               array_agg(c.organisation_id), array_agg(coalesce('trade' = ANY(cx_role_scopes(c.role)), false))
        INTO v_usr_id, v_usr_code, v_usr_org, v_usr_trade
        FROM accounts_user u
        LEFT JOIN LATERAL (SELECT mb.organisation_id, mb.role FROM accounts_membership mb
                           WHERE mb.user_id = u.id ORDER BY mb.created_at, mb.id LIMIT 1) c ON true
        WHERE u.id = ANY(ARRAY(SELECT t.usr FROM unnest(p_token, p_user) AS t(tok, usr) WHERE t.tok IS NULL));
    END IF;

    SELECT array_agg(o.id), array_agg(o.kyc_status), array_agg(o.beneficial_owner_id),
           array_agg(coalesce(f.taker_bps, (SELECT d.taker_bps FROM exchange_feetier d WHERE d.is_default), 0))
    INTO v_org_id, v_org_kyc, v_org_owner, v_org_taker
    FROM accounts_organisation o
    LEFT JOIN exchange_membertier m ON m.organisation_id = o.id
    LEFT JOIN exchange_feetier f ON f.id = m.tier_id
    WHERE o.id = ANY(p_org);
    m := coalesce(array_length(v_org_id, 1), 0);

    SELECT array_agg(s.id), array_agg(s.state), array_agg(s.gate_closure_at), array_agg(s.reference_price_fen),
           array_agg(s.band_bps)
    INTO v_ins_id, v_ins_state, v_ins_gate, v_ins_ref, v_ins_band
    FROM exchange_instrument s WHERE s.id = ANY(p_instrument);

    IF EXISTS (SELECT 1 FROM unnest(p_org, p_client_id) AS t(o, c) GROUP BY o, c HAVING count(*) > 1) THEN
        SELECT array_agg(t.first ORDER BY t.n) INTO v_first FROM (
            SELECT u.n, min(u.n) OVER (PARTITION BY u.o, u.c) AS first
            FROM unnest(p_org, p_client_id) WITH ORDINALITY AS u(o, c, n)) t;
    END IF;

    -- Accounts and positions exist before they are read (a first order creates them).
    IF EXISTS (SELECT 1 FROM unnest(p_org, p_side) AS t(o, s) WHERE t.s = 'buy'
               AND NOT EXISTS (SELECT 1 FROM exchange_ledgeraccount a WHERE a.organisation_id = t.o AND a.kind = 'held')) THEN
        INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance)
        SELECT DISTINCT t.o, kinds.kind, 0
        FROM unnest(p_org, p_side) AS t(o, s), (VALUES ('available'), ('held')) AS kinds(kind)
        WHERE t.s = 'buy'
        ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO exchange_capacityposition (organisation_id, instrument_id, held, sold, bought)
    SELECT DISTINCT t.o, t.ins, 0, 0, 0 FROM unnest(p_org, p_instrument, p_side) AS t(o, ins, s)
    WHERE t.s = 'sell' AND t.ins = ANY(v_ins_id)  -- an unknown instrument is refused below
      AND NOT EXISTS (SELECT 1 FROM exchange_capacityposition c WHERE c.organisation_id = t.o AND c.instrument_id = t.ins)
    ON CONFLICT DO NOTHING;

    FOR v_pass IN 1..3 LOOP
        v_avail_id := array_fill(NULL::bigint, ARRAY[m]);
        v_avail := array_fill(0::bigint, ARRAY[m]);
        v_held_id := array_fill(NULL::bigint, ARRAY[m]);
        v_hold_sum := array_fill(0::bigint, ARRAY[m]);
        v_hold_count := array_fill(0, ARRAY[m]);
        v_hold_order := array_fill(NULL::bigint, ARRAY[m]);
        v_journal_id := array_fill(NULL::bigint, ARRAY[m]);
        v_acc_id := NULL;
        v_acc_delta := NULL;
        v_pos_key := NULL;
        v_pos_id := NULL;
        v_pos_free := NULL;
        v_pos_add := NULL;
        v_pos_changed := NULL;
        v_pos_delta := NULL;
        v_taken := array_fill(NULL::int, ARRAY[n]);
        v_code := array_fill(NULL::text, ARRAY[n]);
        v_id := array_fill(NULL::bigint, ARRAY[n]);
        v_owner := array_fill(NULL::bigint, ARRAY[n]);
        v_hold := array_fill(0::bigint, ARRAY[n]);
        v_per_lot := array_fill(0::bigint, ARRAY[n]);
        v_accepted := 0;

        -- The same query twice: without locks, then locked in id order. Only the locking
        -- clause differs, and dynamic SQL would plan the statement again on every call.
        IF v_pass = 1 THEN
            OPEN v_cursor FOR
                SELECT a.id, a.organisation_id, a.kind, a.balance FROM exchange_ledgeraccount a
                WHERE a.organisation_id = ANY(ARRAY(SELECT o FROM unnest(p_org, p_side) AS t(o, s) WHERE t.s = 'buy'))
                  AND a.kind IN ('available', 'held');
        ELSE
            OPEN v_cursor FOR
                SELECT a.id, a.organisation_id, a.kind, a.balance FROM exchange_ledgeraccount a
                WHERE a.organisation_id = ANY(ARRAY(SELECT o FROM unnest(p_org, p_side) AS t(o, s) WHERE t.s = 'buy'))
                  AND a.kind IN ('available', 'held')
                ORDER BY a.id FOR UPDATE;
        END IF;
        LOOP
            FETCH v_cursor INTO r;
            EXIT WHEN NOT FOUND;
            k := array_position(v_org_id, r.organisation_id);
            IF r.kind = 'available' THEN
                v_avail_id[k] := r.id;
                v_avail[k] := r.balance;
            ELSE
                v_held_id[k] := r.id;
            END IF;
        END LOOP;
        CLOSE v_cursor;
        k := 0;
        IF v_pass = 1 THEN
            OPEN v_cursor FOR
                SELECT c.id, c.organisation_id, c.instrument_id,
                       coalesce((SELECT sum(lp.scu_h) FROM marketplace_listingperiod lp
                                 WHERE lp.provider_id = c.organisation_id AND lp.compute_class_id = s.compute_class_id
                                   AND lp.hub_id = s.hub_id AND lp.period_start = s.delivery_start), 0)
                           + c.bought - c.sold - c.held AS free
                FROM exchange_capacityposition c JOIN exchange_instrument s ON s.id = c.instrument_id
                WHERE (c.organisation_id, c.instrument_id) IN (
                    SELECT o, ins FROM unnest(p_org, p_instrument, p_side) AS t(o, ins, s) WHERE t.s = 'sell');
        ELSE
            OPEN v_cursor FOR
                SELECT c.id, c.organisation_id, c.instrument_id,
                       coalesce((SELECT sum(lp.scu_h) FROM marketplace_listingperiod lp
                                 WHERE lp.provider_id = c.organisation_id AND lp.compute_class_id = s.compute_class_id
                                   AND lp.hub_id = s.hub_id AND lp.period_start = s.delivery_start), 0)
                           + c.bought - c.sold - c.held AS free
                FROM exchange_capacityposition c JOIN exchange_instrument s ON s.id = c.instrument_id
                WHERE (c.organisation_id, c.instrument_id) IN (
                    SELECT o, ins FROM unnest(p_org, p_instrument, p_side) AS t(o, ins, s) WHERE t.s = 'sell')
                ORDER BY c.id FOR UPDATE OF c;
        END IF;
        LOOP
            FETCH v_cursor INTO r;
            EXIT WHEN NOT FOUND;
            k := k + 1;
            v_pos_key[k] := (r.organisation_id << 32) | r.instrument_id;
            v_pos_id[k] := r.id;
            v_pos_free[k] := r.free;
            v_pos_add[k] := 0;
        END LOOP;
        CLOSE v_cursor;

        -- client_order_ids placed before (OFFSET 0 keeps it one index probe per order).
        SELECT array_agg(u.n), array_agg(x.id) INTO v_seen_n, v_seen_id
        FROM unnest(p_org, p_client_id) WITH ORDINALITY AS u(o, c, n)
        CROSS JOIN LATERAL (SELECT o.id FROM exchange_order o
                            WHERE o.organisation_id = u.o AND o.client_order_id = u.c OFFSET 0) x;

        FOR i IN 1..n LOOP
            -- A membership moved to another organisation refuses the order rather than charge
            -- the organisation the caller had cached ('membership_changed': resolve again).
            IF p_token[i] IS NOT NULL THEN
                f := array_position(v_tok_id, p_token[i]);
                v_cred := CASE WHEN f IS NULL THEN 'token_revoked'
                               WHEN v_tok_code[f] IS NOT NULL THEN v_tok_code[f]
                               WHEN v_tok_org[f] IS DISTINCT FROM p_org[i] THEN 'membership_changed'
                               WHEN NOT v_tok_trade[f] THEN 'scope_missing' END;
            ELSE
                f := array_position(v_usr_id, p_user[i]);
                v_cred := CASE WHEN f IS NULL THEN 'user_inactive'
                               WHEN v_usr_code[f] IS NOT NULL THEN v_usr_code[f]
                               WHEN v_usr_org[f] IS DISTINCT FROM p_org[i] THEN 'membership_changed'
                               WHEN NOT v_usr_trade[f] THEN 'scope_missing' END;
            END IF;
            IF v_cred IS NOT NULL THEN
                v_code[i] := v_cred; CONTINUE;
            END IF;
            k := array_position(v_org_id, p_org[i]);
            IF v_org_kyc[k] = 'suspended' THEN
                v_code[i] := 'organisation_suspended'; CONTINUE;
            ELSIF v_org_kyc[k] IS DISTINCT FROM 'verified' THEN
                v_code[i] := 'kyc_pending'; CONTINUE;
            END IF;

            IF v_first IS NOT NULL AND v_first[i] <> i AND v_taken[v_first[i]] IS NOT NULL THEN
                v_id[i] := v_id[v_taken[v_first[i]]]; v_code[i] := 'duplicate'; CONTINUE;
            END IF;
            IF v_seen_n IS NOT NULL THEN
                f := array_position(v_seen_n, i);
                IF f IS NOT NULL THEN
                    v_id[i] := v_seen_id[f]; v_code[i] := 'duplicate'; CONTINUE;
                END IF;
            END IF;

            f := array_position(v_ins_id, p_instrument[i]);
            IF f IS NULL THEN
                -- Orders carry no constraint on their instrument: an id not found is refused here.
                v_code[i] := 'unknown_instrument'; CONTINUE;
            ELSIF v_ins_state[f] = 'halted' THEN
                v_code[i] := 'instrument_halted'; CONTINUE;
            ELSIF v_ins_state[f] = 'closed' OR v_ins_gate[f] <= v_now THEN
                v_code[i] := 'gate_closed'; CONTINUE;
            END IF;
            -- An auction only collects resting orders: one that must trade at once (IOC, FOK, and
            -- so every market order) could only be cancelled when it uncrosses: refused now.
            IF p_tif[i] IN ('IOC', 'FOK') AND v_ins_state[f] <> 'continuous' THEN
                v_code[i] := 'auction_in_progress'; CONTINUE;
            END IF;
            IF p_type[i] = 'market' THEN
                IF v_ins_state[f] <> 'continuous' THEN
                    v_code[i] := 'auction_in_progress'; CONTINUE;
                ELSIF v_ins_ref[f] IS NULL THEN
                    v_code[i] := 'no_reference_price'; CONTINUE;
                END IF;
                -- A market bid can never trade above the band's top: hold for that price.
                v_hold_price := v_ins_ref[f] + (v_ins_ref[f] * v_ins_band[f] + 9999) / 10000;
            ELSE
                v_hold_price := p_price[i];
            END IF;

            IF p_side[i] = 'buy' THEN
                -- Per-lot ceiling: the fee on any k-lot fill, rounded half up, never exceeds k × this.
                v_per_lot[i] := v_hold_price + (v_hold_price * v_org_taker[k] + 9999) / 10000;
                v_amount := v_per_lot[i] * p_qty[i];
                IF v_avail[k] < v_amount THEN
                    v_code[i] := 'insufficient_funds'; CONTINUE;
                END IF;
                v_avail[k] := v_avail[k] - v_amount;
                v_hold[i] := v_amount;
                v_hold_sum[k] := v_hold_sum[k] + v_amount;
                v_hold_count[k] := v_hold_count[k] + 1;
            ELSE
                f := array_position(v_pos_key, (p_org[i] << 32) | p_instrument[i]);
                IF v_pos_free[f] < p_qty[i] THEN
                    v_code[i] := 'insufficient_capacity'; CONTINUE;
                END IF;
                v_pos_free[f] := v_pos_free[f] - p_qty[i];
                v_pos_add[f] := v_pos_add[f] + p_qty[i];
            END IF;

            v_id[i] := nextval('exchange_order_id_seq');
            v_owner[i] := v_org_owner[k];
            IF p_side[i] = 'buy' THEN
                v_hold_order[k] := v_id[i];
            END IF;
            IF v_first IS NOT NULL THEN
                v_taken[v_first[i]] := i;
            END IF;
            v_accepted := v_accepted + 1;
            v_code[i] := 'accepted';
        END LOOP;

        EXIT WHEN v_accepted = 0;

        FOR k IN 1..m LOOP
            CONTINUE WHEN v_hold_sum[k] = 0;
            v_journal_id[k] := nextval('exchange_journal_id_seq');
            v_acc_id := v_acc_id || v_avail_id[k] || v_held_id[k];
            v_acc_delta := v_acc_delta || -v_hold_sum[k] || v_hold_sum[k];
        END LOOP;
        FOR k IN 1..coalesce(array_length(v_pos_id, 1), 0) LOOP
            CONTINUE WHEN v_pos_add[k] = 0;
            v_pos_changed := v_pos_changed || v_pos_id[k];
            v_pos_delta := v_pos_delta || v_pos_add[k];
        END LOOP;

        BEGIN
            -- Row locks first (accounts, then positions, in id order), new rows after: every
            -- transaction here and in the engine takes them in that order.
            IF v_acc_id IS NOT NULL THEN
                PERFORM 1 FROM exchange_ledgeraccount a WHERE a.id = ANY(v_acc_id) ORDER BY a.id FOR UPDATE;
                -- The accounts' CHECK refuses an available balance below zero.
                UPDATE exchange_ledgeraccount a SET balance = a.balance + v_acc_delta[array_position(v_acc_id, a.id)]
                WHERE a.id = ANY(v_acc_id);
            END IF;
            IF v_pos_changed IS NOT NULL THEN
                PERFORM 1 FROM exchange_capacityposition c WHERE c.id = ANY(v_pos_changed) ORDER BY c.id FOR UPDATE;
                UPDATE exchange_capacityposition c SET held = c.held + v_pos_delta[array_position(v_pos_changed, c.id)]
                FROM exchange_instrument s
                WHERE c.id = ANY(v_pos_changed) AND s.id = c.instrument_id
                  AND coalesce((SELECT sum(lp.scu_h) FROM marketplace_listingperiod lp
                                WHERE lp.provider_id = c.organisation_id AND lp.compute_class_id = s.compute_class_id
                                  AND lp.hub_id = s.hub_id AND lp.period_start = s.delivery_start), 0)
                      + c.bought - c.sold - c.held >= v_pos_delta[array_position(v_pos_changed, c.id)];
                GET DIAGNOSTICS v_rows = ROW_COUNT;
                IF v_rows < array_length(v_pos_changed, 1) THEN
                    RAISE EXCEPTION 'capacity moved' USING ERRCODE = 'CX001';
                END IF;
            END IF;
            INSERT INTO exchange_order (
                id, instrument_id, organisation_id, owner_id, user_id, client_order_id, side, type, tif,
                post_only, price_fen, entry_price_fen, qty, remaining, filled, expires_at, protect_ticks, held_fen,
                hold_per_lot_fen, status, reason, priority_seq, created_at, updated_at)
            SELECT u.id, u.ins, u.org, u.owner, u.usr, u.cid, u.side, u.type, u.tif, u.post_only, u.price, u.price,
                   u.qty, u.qty, 0, u.expires, u.protect, u.hold, u.per_lot, 'accepted', '', 0, v_now, v_now
            FROM unnest(v_id, v_code, p_instrument, p_org, v_owner, p_user, p_client_id, p_side, p_type, p_tif,
                        p_post_only, p_price, p_qty, p_expires, p_protect, v_hold, v_per_lot)
                AS u(id, code, ins, org, owner, usr, cid, side, type, tif, post_only, price, qty, expires, protect,
                     hold, per_lot)
            WHERE u.code = 'accepted';
            INSERT INTO exchange_inboxcommand (instrument_id, action, order_id, extra_hold_fen, created_at)
            SELECT u.ins, 'new', u.id, 0, v_now
            FROM unnest(v_id, v_code, p_instrument) WITH ORDINALITY AS u(id, code, ins, n)
            WHERE u.code = 'accepted' ORDER BY u.n;

            IF v_acc_id IS NOT NULL THEN
                INSERT INTO exchange_journal (id, kind, order_id, memo, created_at)
                SELECT u.id, 'hold', CASE WHEN u.n = 1 THEN u.order_id END,
                       CASE WHEN u.n = 1 THEN '' ELSE u.n || ' orders placed together' END, v_now
                FROM unnest(v_journal_id, v_hold_count, v_hold_order) AS u(id, n, order_id)
                WHERE u.id IS NOT NULL;
                INSERT INTO exchange_ledgerleg (journal_id, account_id, amount_fen)
                SELECT u.id, a.account, a.amount
                FROM unnest(v_journal_id, v_avail_id, v_held_id, v_hold_sum) AS u(id, avail, held, total),
                     LATERAL (VALUES (u.avail, -u.total), (u.held, u.total)) AS a(account, amount)
                WHERE u.id IS NOT NULL;
            END IF;
            v_done := true;
        EXCEPTION WHEN check_violation OR unique_violation OR SQLSTATE 'CX001' THEN
            -- A balance or position moved since the unlocked read, or another batch placed the
            -- same client_order_id: decide again on locked rows.
            IF v_pass = 3 THEN
                RAISE;
            END IF;
        END;
        EXIT WHEN v_done;
    END LOOP;

    IF v_accepted > 0 THEN
        PERFORM pg_notify('cx_inbox', '');
    END IF;
    RETURN QUERY
        SELECT (u.n - 1)::int, u.id, u.code, CASE WHEN u.code = 'accepted' THEN u.hold END,
               CASE WHEN u.code = 'accepted' THEN v_now END
        FROM unnest(v_code, v_id, v_hold) WITH ORDINALITY AS u(code, id, hold, n);
END;
$$;
