-- Order entry: risk checks, holds and inserts for a batch of orders in one statement.
--
-- Called by exchange.orders.gateway with one array per column (index i = the i-th order).
-- Everything that can change between two orders (token revocation, organisation status,
-- instrument state, balances, capacity) is checked here, inside the transaction that
-- writes the order, so a revocation or suspension takes effect for the very next order.
-- Accounts and capacity positions are locked in id order: two batches (or the engine)
-- never wait on each other in a cycle.
--
-- Result codes: 'accepted', 'duplicate' (client_order_id seen before: the first order is
-- returned), or a rejection code (nothing written for that order).

CREATE OR REPLACE FUNCTION cx_listed_scu_h(p_org bigint, p_class bigint, p_hub bigint, p_period timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(SUM(lp.scu_h), 0)::bigint
    FROM marketplace_listingperiod lp
    WHERE lp.provider_id = p_org AND lp.compute_class_id = p_class
      AND lp.hub_id = p_hub AND lp.period_start = p_period
$$;

CREATE OR REPLACE FUNCTION cx_place_orders(
    p_token bigint[], p_org bigint[], p_user bigint[], p_instrument bigint[],
    p_client_id text[], p_side text[], p_type text[], p_tif text[], p_post_only boolean[],
    p_price bigint[], p_qty bigint[], p_expires timestamptz[], p_protect bigint[]
) RETURNS TABLE (idx int, order_id bigint, code text)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(array_length(p_org, 1), 0);
    i int;
    v_now timestamptz := now();
    v_org record;
    v_ins record;
    v_token record;
    v_taker_bps bigint;
    v_hold_price bigint;
    v_per_lot bigint;
    v_hold bigint;
    v_order bigint;
    v_journal bigint;
    v_avail bigint;
    v_held bigint;
    v_pos record;
    v_listed bigint;
    v_seq bigint;
BEGIN
    -- Accounts for every buying organisation exist before they are locked.
    INSERT INTO exchange_ledgeraccount (organisation_id, kind, balance)
    SELECT DISTINCT o, k, 0 FROM unnest(p_org, p_side) AS t(o, s), (VALUES ('available'), ('held')) AS kinds(k)
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

    FOR i IN 1..n LOOP
        idx := i - 1;
        order_id := NULL;

        IF p_token[i] IS NOT NULL THEN
            SELECT t.revoked_at, t.expires_at INTO v_token FROM accounts_apitoken t WHERE t.id = p_token[i];
            IF NOT FOUND OR v_token.revoked_at IS NOT NULL THEN
                code := 'token_revoked'; RETURN NEXT; CONTINUE;
            END IF;
            IF v_token.expires_at IS NOT NULL AND v_token.expires_at <= v_now THEN
                code := 'token_expired'; RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        SELECT o.kyc_status, o.beneficial_owner_id INTO v_org FROM accounts_organisation o WHERE o.id = p_org[i];
        IF v_org.kyc_status = 'suspended' THEN
            code := 'organisation_suspended'; RETURN NEXT; CONTINUE;
        ELSIF v_org.kyc_status <> 'verified' THEN
            code := 'kyc_pending'; RETURN NEXT; CONTINUE;
        END IF;

        SELECT o.id INTO v_order FROM exchange_order o
        WHERE o.organisation_id = p_org[i] AND o.client_order_id = p_client_id[i];
        IF FOUND THEN
            order_id := v_order; code := 'duplicate'; RETURN NEXT; CONTINUE;
        END IF;

        SELECT s.state, s.gate_closure_at, s.reference_price_fen, s.band_bps, s.compute_class_id,
               s.hub_id, s.delivery_start
        INTO v_ins FROM exchange_instrument s WHERE s.id = p_instrument[i];
        IF v_ins.state = 'halted' THEN
            code := 'instrument_halted'; RETURN NEXT; CONTINUE;
        ELSIF v_ins.state = 'closed' OR v_ins.gate_closure_at <= v_now THEN
            code := 'gate_closed'; RETURN NEXT; CONTINUE;
        END IF;
        IF p_type[i] = 'market' THEN
            IF v_ins.state <> 'continuous' THEN
                code := 'auction_in_progress'; RETURN NEXT; CONTINUE;
            ELSIF v_ins.reference_price_fen IS NULL THEN
                code := 'no_reference_price'; RETURN NEXT; CONTINUE;
            END IF;
            -- A market bid can never trade above the band's top: hold for that price.
            v_hold_price := v_ins.reference_price_fen
                + (v_ins.reference_price_fen * v_ins.band_bps + 9999) / 10000;
        ELSE
            v_hold_price := p_price[i];
        END IF;

        IF p_side[i] = 'buy' THEN
            SELECT COALESCE(
                (SELECT f.taker_bps FROM exchange_membertier m JOIN exchange_feetier f ON f.id = m.tier_id
                 WHERE m.organisation_id = p_org[i]),
                (SELECT f.taker_bps FROM exchange_feetier f WHERE f.is_default), 0)
            INTO v_taker_bps;
            -- Per-lot ceiling: the fee on any k-lot fill, rounded half up, never exceeds k × this.
            v_per_lot := v_hold_price + (v_hold_price * v_taker_bps + 9999) / 10000;
            v_hold := v_per_lot * p_qty[i];
            UPDATE exchange_ledgeraccount a SET balance = a.balance - v_hold
            WHERE a.organisation_id = p_org[i] AND a.kind = 'available' AND a.balance >= v_hold
            RETURNING a.id INTO v_avail;
            IF NOT FOUND THEN
                code := 'insufficient_funds'; RETURN NEXT; CONTINUE;
            END IF;
            UPDATE exchange_ledgeraccount a SET balance = a.balance + v_hold
            WHERE a.organisation_id = p_org[i] AND a.kind = 'held'
            RETURNING a.id INTO v_held;
        ELSE
            v_per_lot := 0;
            v_hold := 0;
            SELECT c.id, c.held, c.sold, c.bought INTO v_pos FROM exchange_capacityposition c
            WHERE c.organisation_id = p_org[i] AND c.instrument_id = p_instrument[i];
            v_listed := cx_listed_scu_h(p_org[i], v_ins.compute_class_id, v_ins.hub_id, v_ins.delivery_start);
            IF v_listed + v_pos.bought - v_pos.sold - v_pos.held < p_qty[i] THEN
                code := 'insufficient_capacity'; RETURN NEXT; CONTINUE;
            END IF;
            UPDATE exchange_capacityposition c SET held = c.held + p_qty[i] WHERE c.id = v_pos.id;
        END IF;

        INSERT INTO exchange_order (
            instrument_id, organisation_id, owner_id, user_id, client_order_id, side, type, tif,
            post_only, price_fen, qty, remaining, filled, expires_at, protect_ticks, held_fen,
            hold_per_lot_fen, status, reason, priority_seq, created_at, updated_at)
        VALUES (
            p_instrument[i], p_org[i], v_org.beneficial_owner_id, p_user[i], p_client_id[i], p_side[i],
            p_type[i], p_tif[i], p_post_only[i], p_price[i], p_qty[i], p_qty[i], 0, p_expires[i],
            p_protect[i], v_hold, v_per_lot, 'accepted', '', 0, v_now, v_now)
        RETURNING id INTO v_order;
        IF v_hold > 0 THEN
            INSERT INTO exchange_journal (kind, order_id, memo, created_at)
            VALUES ('hold', v_order, '', v_now) RETURNING id INTO v_journal;
            INSERT INTO exchange_ledgerleg (journal_id, account_id, amount_fen)
            VALUES (v_journal, v_avail, -v_hold), (v_journal, v_held, v_hold);
        END IF;
        INSERT INTO exchange_inboxcommand (instrument_id, action, order_id, extra_hold_fen, created_at)
        VALUES (p_instrument[i], 'new', v_order, 0, v_now) RETURNING seq INTO v_seq;
        order_id := v_order; code := 'accepted'; RETURN NEXT;
    END LOOP;
    PERFORM pg_notify('cx_inbox', '');
END;
$$;
