/*-------------------------------------------------------------------------
 *
 * im_window.c
 *	  The notification worker's rate windows: every channel is held to its
 *	  platform's sliding window (rate_per_minute, and Feishu robots' 5 a
 *	  second), and app messages to each person to the platform's per-person
 *	  limit, by a log of recent requests, stamped when the answer arrived,
 *	  which is never earlier than when the platform counted them.  They live
 *	  as long as the worker, whatever becomes of its rounds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

static HTAB *channel_windows = NULL;

/*
 * An app's limit per recipient (5.4): WeCom silently drops a member's 31st
 * message in a minute, Feishu refuses a user's 6th in a second.  (WeCom's
 * 1000 an hour is not tracked: 30 a minute for 33 minutes on end.)
 */
#define RECIPIENT_KEY 128
static HTAB *recipient_windows = NULL;

void
crm_window_resize(Window *w, int limit, TimestampTz span)
{
	TimestampTz *times;
	int			keep = Min(w->count, limit);

	w->span = span;
	if (w->limit == limit)
		return;
	times = limit > 0 ? MemoryContextAllocZero(TopMemoryContext, sizeof(TimestampTz) * limit) : NULL;
	for (int i = 0; i < keep; i++)
		times[i] = w->times[(w->head + w->count - keep + i) % w->limit];
	if (w->times)
		pfree(w->times);
	w->times = times;
	w->limit = limit;
	w->head = 0;
	w->count = keep;
}

/* room left in the window at now; INT_MAX without a limit */
int
crm_window_room(Window *w, TimestampTz now)
{
	if (w->limit == 0)
		return INT_MAX;
	while (w->count > 0 && w->times[w->head] <= now - w->span)
	{
		w->head = (w->head + 1) % w->limit;
		w->count--;
	}
	return w->limit - w->count;
}

void
crm_window_add(Window *w, TimestampTz t)
{
	if (w->limit == 0)
		return;
	if (w->count == w->limit)
	{
		w->head = (w->head + 1) % w->limit;
		w->count--;
	}
	w->times[(w->head + w->count) % w->limit] = t;
	w->count++;
}

/* when the window next has room; 0 if it has now */
TimestampTz
crm_window_opens(Window *w)
{
	return w->limit > 0 && w->count >= w->limit ? w->times[w->head] + w->span : 0;
}

void
crm_windows_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(ChannelWindows);
	channel_windows = hash_create("crm IM channel windows", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	ctl.keysize = RECIPIENT_KEY;
	ctl.entrysize = sizeof(RecipientWindow);
	recipient_windows = hash_create("crm IM recipient windows", 256, &ctl, HASH_ELEM | HASH_STRINGS);
}

/* The channel's windows, sized to its row. */
ChannelWindows *
crm_channel_windows(int64 channel_id, int rate, bool feishu_robot)
{
	bool		found;
	ChannelWindows *cw = hash_search(channel_windows, &channel_id, HASH_ENTER, &found);

	if (!found)
		memset((char *) cw + sizeof(int64), 0, sizeof(ChannelWindows) - sizeof(int64));
	/* the platforms count in their own clocks: a second of margin, a tenth for Feishu's 5/s */
	crm_window_resize(&cw->minute, rate, 61 * USECS_PER_SEC);
	crm_window_resize(&cw->second, feishu_robot ? 5 : 0, USECS_PER_SEC + USECS_PER_SEC / 10);
	return cw;
}

/* A person's window on an app channel; "planned" counts the messages of this round. */
RecipientWindow *
crm_recipient_window(int64 channel_id, const char *platform, const char *im_id, uint64 round)
{
	char		key[RECIPIENT_KEY] = {0};
	bool		found;
	RecipientWindow *rw;
	int			limit = strcmp(platform, "wecom") == 0 ? 30 : strcmp(platform, "feishu") == 0 ? 5 : 0;

	snprintf(key, sizeof(key), INT64_FORMAT ":%s", channel_id, im_id);
	rw = hash_search(recipient_windows, key, HASH_ENTER, &found);
	if (!found)
		memset(&rw->window, 0, sizeof(RecipientWindow) - offsetof(RecipientWindow, window));
	crm_window_resize(&rw->window, limit, limit == 30 ? 61 * USECS_PER_SEC : USECS_PER_SEC + USECS_PER_SEC / 10);
	if (rw->round != round)
	{
		rw->round = round;
		rw->planned = 0;
	}
	return rw;
}

/* Requests sent in the last minute (before a restart) still count; in a transaction. */
void
crm_windows_load_history(void)
{
	int			ret = SPI_execute("SELECT channel_id, sent_at FROM crm.im_delivery "
								  " WHERE status = 'sent' AND sent_in = id "
								  "   AND sent_at > now() - interval '61 seconds' ORDER BY sent_at", false, 0);

	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("could not read recent IM deliveries: %s", SPI_result_code_string(ret))));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		TimestampTz at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		ChannelWindows *cw = hash_search(channel_windows, &id, HASH_FIND, NULL);

		if (cw)
		{
			crm_window_add(&cw->minute, at);
			crm_window_add(&cw->second, at);
		}
	}
}
